"""The cheap paths through the middleware stack give the same answers as the general ones.

A streamed token must cross every layer as a bare call to the next ``send``;
the shortcuts taken for that (CORS headers written without Starlette's
per-message coroutine, cached metric children and route templates, a request ID
built without ``uuid.uuid4``) must not change a single header or label.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{cookiecutter.package_name}}.chat.service import GenerationRecord
from {{cookiecutter.package_name}}.middleware.body_limit import BodyLimitMiddleware
from {{cookiecutter.package_name}}.middleware.cors import (
    ALLOW_HEADERS,
    ALLOW_METHODS,
    EXPOSE_HEADERS,
    MAX_AGE,
    CORSMiddleware,
)
from {{cookiecutter.package_name}}.middleware.error_boundary import ErrorBoundaryMiddleware
from {{cookiecutter.package_name}}.middleware.request_id import (
    RequestIdMiddleware,
    new_request_id,
    route_template,
)
from {{cookiecutter.package_name}}.middleware.security_headers import (
    SecurityHeadersMiddleware,
    with_defaults,
)
from {{cookiecutter.package_name}}.observability.metrics import Metrics

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory

Headers = list[tuple[bytes, bytes]]
APP_ORIGIN = "https://app.example.com"
TOKENS = 5


def http_scope(
    method: str = "GET", path: str = "/api/v1/models", headers: Headers | None = None
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def receive_nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def streaming_app(response_headers: Headers, checks: list[bool]) -> ASGIApp:
    """Sends a start and ``TOKENS`` body messages; records whether each body ``send``
    handed back exactly what the server's ``send`` returned (no wrapper of its own)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": list(response_headers)}
        await send(start)
        for _ in range(TOKENS):
            awaitable = send({"type": "http.response.body", "body": b"t", "more_body": True})
            checks.append(awaitable is ServerSend.last_returned)
            await awaitable
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


class ServerSend:
    """A server's ``send``: returns a fresh, already completed future per message."""

    last_returned: Awaitable[None] | None = None

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> Awaitable[None]:
        self.messages.append(message)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        ServerSend.last_returned = future
        return future


def layers(make_settings: SettingsFactory) -> dict[str, Callable[[ASGIApp], ASGIApp]]:
    settings = make_settings(cors_origins=APP_ORIGIN)
    return {
        "request_id": lambda app: RequestIdMiddleware(app, metrics=Metrics()),
        "security_headers": lambda app: SecurityHeadersMiddleware(app, settings=settings),
        "body_limit": lambda app: BodyLimitMiddleware(app, max_size=1 << 20),
        "cors": lambda app: CORSMiddleware(app, settings=settings),
        "error_boundary": lambda app: ErrorBoundaryMiddleware(app),
    }


@pytest.mark.parametrize(
    "layer", ["request_id", "security_headers", "body_limit", "cors", "error_boundary"]
)
async def test_tokens_cross_each_layer_as_a_bare_forward(
    make_settings: SettingsFactory, layer: str
) -> None:
    checks: list[bool] = []
    inner = streaming_app([(b"content-type", b"text/event-stream")], checks)
    wrapped = layers(make_settings)[layer](inner)
    # An Origin, so that CORS takes its simple-response path; a chunked body
    # without Content-Length, so that the body limit counts (and wraps send).
    scope = http_scope(
        headers=[(b"origin", APP_ORIGIN.encode()), (b"transfer-encoding", b"chunked")]
    )
    server = ServerSend()
    await wrapped(scope, receive_nothing, server)
    assert checks == [True] * TOKENS
    assert len(server.messages) == TOKENS + 2


def body_reader(seen: dict[str, Any]) -> ASGIApp:
    """Reads the whole body, then answers 200; records the receive it was given."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["receive"] = receive
        seen["bytes"] = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            seen["bytes"] += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def body_in_chunks(size: int, count: int) -> Receive:
    sent = 0

    async def receive() -> Message:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": sent < count}

    return receive


async def test_a_bodiless_http1_request_passes_unwrapped() -> None:
    # Neither Content-Length nor Transfer-Encoding: no body in HTTP/1.x.
    seen: dict[str, Any] = {}
    server = ServerSend()
    await BodyLimitMiddleware(body_reader(seen), max_size=10)(http_scope(), receive_nothing, server)
    assert seen["receive"] is receive_nothing
    assert server.messages[0]["status"] == 200


@pytest.mark.parametrize(
    ("http_version", "headers"),
    [("1.1", [(b"transfer-encoding", b"chunked")]), ("2", []), ("3", [])],
)
async def test_an_undeclared_body_is_counted(http_version: str, headers: Headers) -> None:
    # HTTP/2 and 3 send a body without either header: it must still be counted.
    seen: dict[str, Any] = {}
    scope = {**http_scope("POST", headers=headers), "http_version": http_version}
    server = ServerSend()
    await BodyLimitMiddleware(body_reader(seen), max_size=10)(scope, body_in_chunks(4, 3), server)
    assert server.messages[0]["status"] == 413
    assert seen["bytes"] <= 10


def starlette_cors(app: ASGIApp, origins: list[str], credentials: bool) -> ASGIApp:
    return StarletteCORSMiddleware(
        app,
        allow_origins=origins,
        allow_methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        allow_credentials=credentials,
        expose_headers=EXPOSE_HEADERS,
        max_age=MAX_AGE,
    )


async def response_headers(app: ASGIApp, request_headers: Headers) -> Headers:
    server = ServerSend()
    await app(http_scope(headers=request_headers), receive_nothing, server)
    start = server.messages[0]
    assert start["type"] == "http.response.start"
    return [(bytes(name), bytes(value)) for name, value in start["headers"]]


@pytest.mark.parametrize(
    ("origins", "credentials"),
    [([APP_ORIGIN], False), ([APP_ORIGIN], True), (["*"], False), ([APP_ORIGIN, "*"], False)],
)
@pytest.mark.parametrize("request_origin", [None, APP_ORIGIN, "https://evil.example.com", "null"])
@pytest.mark.parametrize(
    "app_headers",
    [
        [],
        [(b"content-type", b"application/json"), (b"content-length", b"2")],
        [(b"vary", b"Accept-Encoding"), (b"content-type", b"application/json")],
        [(b"access-control-allow-origin", b"https://other.example.com"), (b"vary", b"A")],
        [(b"access-control-expose-headers", b"X-Mine"), (b"vary", b"A"), (b"vary", b"B")],
    ],
)
async def test_simple_responses_get_exactly_starlettes_headers(
    make_settings: SettingsFactory,
    origins: list[str],
    credentials: bool,
    request_origin: str | None,
    app_headers: Headers,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(app_headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    settings = make_settings(cors_origins=",".join(origins), cors_allow_credentials=credentials)
    ours = CORSMiddleware(app, settings=settings)
    theirs = starlette_cors(app, settings.cors_origins, credentials)
    request: Headers = [(b"accept", b"*/*")]
    if request_origin is not None:
        request.append((b"origin", request_origin.encode()))
    # Twice: the second answer for an origin comes from the cache.
    for _ in range(2):
        assert await response_headers(ours, request) == await response_headers(theirs, request)


def test_request_ids_are_version_4_uuids() -> None:
    seen = {new_request_id() for _ in range(2000)}
    assert len(seen) == 2000
    variants: set[str] = set()
    for value in seen:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        variants.add(value[19])
    # Every variant nibble occurs, as with uuid.uuid4().
    assert variants == set("89ab")


@pytest.mark.parametrize(
    "existing",
    [
        [],
        [(b"content-type", b"text/plain")],
        [(b"Cache-Control", b"no-cache"), (b"content-type", b"text/event-stream")],
        [(b"x-frame-options", b"SAMEORIGIN"), (b"x-frame-options", b"DENY")],
    ],
)
def test_security_defaults_never_override_a_header_set(existing: Headers) -> None:
    defaults = [(b"cache-control", b"no-store"), (b"x-frame-options", b"DENY"), (b"a", b"1")]
    present = {name.lower() for name, _ in existing}
    expected = [*existing, *(item for item in defaults if item[0] not in present)]
    names = frozenset(name for name, _ in defaults)
    assert with_defaults(existing, defaults, names) == expected


class FakeRoute:
    def __init__(self, path: str) -> None:
        self.path = path
        self.path_regex = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")


@pytest.mark.parametrize(
    ("template", "path", "root", "expected"),
    [
        ("/models", "/api/v1/models", "", "/api/v1/models"),
        ("/items/{item_id}", "/api/v1/items/7", "", "/api/v1/items/{item_id}"),
        ("/items/{item_id}", "/api/v1/items/8", "", "/api/v1/items/{item_id}"),
        ("/healthz", "/healthz", "", "/healthz"),
        ("/healthz", "/svc/healthz", "/svc", "/healthz"),
        ("/other", "/api/v1/models", "", "/other"),
    ],
)
def test_route_templates(template: str, path: str, root: str, expected: str) -> None:
    scope: dict[str, Any] = {"route": FakeRoute(template), "path": path, "root_path": root}
    for _ in range(2):
        assert route_template(scope) == expected


def test_cached_metric_children_are_the_registrys_own() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe_request("GET", "/api/v1/models", 200, 0.01)
        metrics.count_error(404, "not_found")
    registry = metrics.registry
    labels = {"method": "GET", "route": "/api/v1/models", "status": "200"}
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 3
    errors = {"status": "404", "code": "not_found"}
    assert registry.get_sample_value("http_errors_total", errors) == 3


def test_cached_generation_children_are_the_registrys_own() -> None:
    metrics = Metrics()
    for transport in ("sse", "sse", "ws"):
        metrics.generation_started(transport)
    for tokens in (5, 7):
        record = GenerationRecord(
            transport="sse", model="m", tokens=tokens, time_to_first_token=0.02
        )
        record.finish_reason = "length"
        metrics.observe_generation(record)
    registry = metrics.registry
    sse = {"transport": "sse"}
    assert registry.get_sample_value("active_streams", sse) == 0
    assert registry.get_sample_value("active_streams", {"transport": "ws"}) == 1
    assert registry.get_sample_value("tokens_streamed_total", sse) == 12
    outcome = {"transport": "sse", "finish_reason": "length"}
    assert registry.get_sample_value("generations_total", outcome) == 2
    assert registry.get_sample_value("time_to_first_token_seconds_count", sse) == 2
