"""Helpers for the gRPC tests: an app serving gRPC on a free port, and typed clients.

The gRPC test modules import only this module (and third-party ones), which
re-exports what they need from the service and ``conftest``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from fastapi import FastAPI
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from {{cookiecutter.package_name}} import grpc as grpc_package
from {{cookiecutter.package_name}}.chat.providers.fake import FakeProvider
from {{cookiecutter.package_name}}.chat.service import ChatService
from {{cookiecutter.package_name}}.grpc import chat_pb2, chat_pb2_grpc
from {{cookiecutter.package_name}}.grpc.server import GrpcServer
from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.ratelimit.base import Quota
from {{cookiecutter.package_name}}.ratelimit.token_bucket import InMemoryRateLimiter

from conftest import AUTH_HEADERS, TEST_DEFAULTS, SettingsFactory, running
from fake_upstream import (
    FakeUpstream,
    StreamScript,
    context_length_exceeded,
    rate_limited,
    server_error,
)
from sse_client import parse_events
from stack_helpers import captured_logs, http_client

__all__ = [
    "AUTH_METADATA",
    "CHAT_SERVICE",
    "GRPC_PACKAGE",
    "HEALTH_SERVICE",
    "REFLECTION_SERVICE",
    "SERVICE_MODULE",
    "SRC",
    "TEST_DEFAULTS",
    "Calls",
    "FakeUpstream",
    "GrpcClient",
    "InMemoryRateLimiter",
    "Quota",
    "SettingsFactory",
    "StreamScript",
    "captured_logs",
    "chat_pb2",
    "collect",
    "connect",
    "context_length_exceeded",
    "create_app",
    "fake_of",
    "free_port",
    "grpc_app",
    "grpc_port",
    "health_pb2",
    "http_client",
    "kinds",
    "parse_events",
    "rate_limited",
    "reflection_pb2",
    "request",
    "running",
    "server_error",
    "serving_grpc",
    "trailing",
    "wait_until",
]

# conftest's credentials as call metadata: gRPC metadata keys are lower case.
AUTH_METADATA: tuple[tuple[str, str], ...] = tuple(
    (key.lower(), value) for key, value in AUTH_HEADERS.items()
)
CHAT_SERVICE = "streaming.v1.ChatService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
# Straight to loopback, whatever proxy the environment names; and a connection of
# its own per channel (grpc shares them between channels to the same target).
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
# The service package: ``python -m <package> --no-http`` serves gRPC alone.
SERVICE_MODULE = grpc_package.__name__.rpartition(".")[0]
GRPC_PACKAGE = Path(grpc_package.__file__).resolve().parent
SRC = GRPC_PACKAGE.parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def grpc_app(make_settings: SettingsFactory, **overrides: Any) -> FastAPI:
    """An app whose gRPC server takes a free port (``GRPC_PORT=0``) unless told otherwise."""
    return create_app(make_settings(**{"grpc_port": 0, **overrides}))


def request(
    prompt: str = "hello there", max_tokens: int | None = None, **fields: Any
) -> chat_pb2.ChatRequest:
    messages = [chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt)]
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    return chat_pb2.ChatRequest(messages=messages, **fields)


def fake_of(app: FastAPI) -> FakeProvider:
    """An app's fake provider: ``active`` generations, and how many ever ``started``."""
    service: ChatService = app.state.wiring.core
    assert isinstance(service.provider, FakeProvider)
    return service.provider


@dataclass
class Calls:
    """Typed callables for every service on one channel."""

    channel: grpc.aio.Channel

    @property
    def chat(self) -> chat_pb2_grpc.ChatServiceStub:
        return chat_pb2_grpc.ChatServiceStub(self.channel)

    @property
    def health_check(
        self,
    ) -> grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ]:
        return self.channel.unary_unary(
            f"/{HEALTH_SERVICE}/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    @property
    def health_watch(
        self,
    ) -> grpc.aio.UnaryStreamMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ]:
        return self.channel.unary_stream(
            f"/{HEALTH_SERVICE}/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    @property
    def reflection(
        self,
    ) -> grpc.aio.StreamStreamMultiCallable[
        reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse
    ]:
        return self.channel.stream_stream(
            f"/{REFLECTION_SERVICE}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


@dataclass
class GrpcClient(Calls):
    """A channel to one app's gRPC server, with the app and an HTTP client of it."""

    app: FastAPI
    http: httpx.AsyncClient

    @property
    def service(self) -> ChatService:
        service: ChatService = self.app.state.wiring.core
        return service

    @property
    def fake(self) -> FakeProvider:
        return fake_of(self.app)


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Calls]:
    """A channel of its own (its own connection) to a gRPC server on loopback."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
        yield Calls(channel)


@asynccontextmanager
async def serving_grpc(app: FastAPI) -> AsyncIterator[GrpcClient]:
    """The app's lifespan (which starts gRPC), an HTTP client and a gRPC channel to it."""
    async with running(app) as http, connect(grpc_port(app)) as calls:
        yield GrpcClient(calls.channel, app, http)


def grpc_port(app: FastAPI) -> int:
    """The port an app's started gRPC server listens on."""
    server: GrpcServer = app.state.grpc_server
    assert server.port is not None
    return server.port


async def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.002
) -> float:
    """Seconds until ``predicate()`` held, checked every ``interval``; fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        if loop.time() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return loop.time() - started


async def collect(
    call: grpc.aio.UnaryStreamCall[chat_pb2.ChatRequest, chat_pb2.ChatEvent],
) -> tuple[list[chat_pb2.ChatEvent], grpc.aio.AioRpcError | None]:
    """Every (further) event of a streamed call, and the error it ended with (``None``: OK).

    Reads with ``read()``, so a test may have read the first events the same way.
    """
    events: list[chat_pb2.ChatEvent] = []
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            assert isinstance(event, chat_pb2.ChatEvent)
            events.append(event)
    except grpc.aio.AioRpcError as error:
        return events, error
    return events, None


def trailing(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {key: value for key, value in error.trailing_metadata() or () if isinstance(value, str)}


def kinds(events: list[chat_pb2.ChatEvent]) -> list[str | None]:
    return [event.WhichOneof("event") for event in events]
