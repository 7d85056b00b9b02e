"""Shared fixtures: settings, an in-process app, and a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
{%- if cookiecutter.use_jwt %}
import jwt
{%- endif %}
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.settings import Settings
{%- if cookiecutter.use_redis %}

# isort: split
# A redis-server for the session (REDIS_URL), emptied before each test; see redis_helpers.
from redis_helpers import empty_redis, redis_limiter, redis_server, redis_session  # noqa: F401
{%- endif %}

# Defaults for tests: no pacing, and limits high enough not to get in the way of
# tests that are not about them.
TEST_DEFAULTS: dict[str, Any] = {
    "environment": "test",
    "fake_llm_delay_ms": 0,
    "rate_limit_ip": "100000/minute",
    "rate_limit_user": "100000/minute",
    "max_concurrent_streams": 1000,
}

# Credentials every test client sends. Empty unless the generated project
# requires authentication on /api/v1 (then a feature fills it below).
AUTH_HEADERS: dict[str, str] = {}
{%- if cookiecutter.use_jwt %}

# /api/v1 requires a bearer token: every test client sends one for this user,
# signed with the secret the test settings use (the token routes are not involved).
TEST_JWT_SECRET = "test-only-jwt-secret-0123456789abcdef0123456789"
TEST_USER = "test-user"
TEST_DEFAULTS["jwt_secret"] = TEST_JWT_SECRET
# 2100-01-01: long-lived, so that no test run ever sees it expire.
AUTH_HEADERS["Authorization"] = "Bearer " + jwt.encode(
    {"sub": TEST_USER, "exp": 4_102_444_800}, TEST_JWT_SECRET, algorithm="HS256"
)
{%- endif %}
{%- if cookiecutter.use_grpc %}

# Test apps serve gRPC on a free port, never the fixed GRPC_PORT.
TEST_DEFAULTS["grpc_port"] = 0
{%- endif %}

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings() -> SettingsFactory:
    def factory(**overrides: Any) -> Settings:
        return Settings(_env_file=None, **{**TEST_DEFAULTS, **overrides})

    return factory


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, behind an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH_HEADERS
        ) as client:
            yield client


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(make_settings())) as http:
        yield http


@pytest.fixture
def client_factory(make_settings: SettingsFactory) -> Callable[..., Any]:
    """``async with client_factory(**settings_overrides) as http`` for one-off settings."""

    def factory(**overrides: Any) -> Any:
        return running(create_app(make_settings(**overrides)))

    return factory


class LiveServer:
    """A real uvicorn serving an app on a free loopback port, in the test's event loop."""

    def __init__(self, app: FastAPI, **config: Any) -> None:
        self.app = app
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        settings: Settings = app.state.wiring.settings
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=settings.shutdown_grace_seconds,
                ws_max_size=settings.ws_max_message_bytes,
                ws_ping_interval=settings.ws_ping_interval,
                ws_ping_timeout=settings.ws_ping_timeout,
                **config,
            )
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Credentials a client of this server should send."""
        return dict(AUTH_HEADERS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        for _ in range(500):
            if self.server.started:
                return
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout=15)
        self.socket.close()


LiveServerFactory = Callable[..., Any]


@pytest.fixture
async def live_server(make_settings: SettingsFactory) -> AsyncIterator[Callable[..., Any]]:
    """``await live_server(**settings_overrides)`` starts a server; all are stopped at the end."""
    servers: list[LiveServer] = []

    async def start(**overrides: Any) -> LiveServer:
        server = LiveServer(create_app(make_settings(**overrides)))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def openai_sdk(server: LiveServer) -> openai.AsyncOpenAI:
    """The official SDK against a live server, as a client application would point it.

    The server's credentials, if any, replace the SDK's own Authorization header.
    """
    return openai.AsyncOpenAI(
        base_url=f"{server.url}/api/v1",
        api_key="unused",
        max_retries=0,
        default_headers=server.headers,
    )
