"""Helpers for the middleware-stack tests: extra routes, captured logs, a server for any app."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import Scope
from starlette.websockets import WebSocket

from conftest import AUTH_HEADERS, LiveServer

CHAT = {"messages": [{"role": "user", "content": "hello there"}]}
LONG_CHAT = {"messages": [{"role": "user", "content": "a long answer"}], "max_tokens": 4000}
SECRET_DETAIL = "db password is hunter2"

# Every API response carries these (Cache-Control aside, which a route may set).
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_security_headers(response: httpx.Response, cache_control: str = "no-store") -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["cache-control"] == cache_control
    assert response.headers["x-request-id"]


# The OpenAI-compatible routes answer errors in OpenAI's shape.
OPENAI_ROUTES = ("/api/v1/chat/completions", "/api/v1/models")


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error body of the route's API; returned as the native ``{code, message, request_id}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    if response.request.url.path.startswith(OPENAI_ROUTES):
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == code
        assert error["type"]
        body = {
            "code": error["code"],
            "message": error["message"],
            "request_id": response.headers["x-request-id"],
        }
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def add_test_routes(app: FastAPI) -> FastAPI:
    """Routes the real API does not have: one that fails, one that counts the body it reads."""
    app.state.sink_seen = None

    @app.get("/api/v1/test/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_DETAIL)

    @app.get("/api/v1/test/boom-mid-stream")
    async def boom_mid_stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk\n"
            raise RuntimeError(SECRET_DETAIL)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/api/v1/test/sink")
    async def sink(request: Request) -> dict[str, int]:
        seen = 0
        try:
            async for chunk in request.stream():
                seen += len(chunk)
        finally:
            app.state.sink_seen = seen
        return {"bytes": seen}

    @app.get("/api/v1/test/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        principal = getattr(request.state, "principal", None)
        logging.getLogger("test.route").info("inside the route")
        return {
            "request_id": request.state.request_id,
            "principal": None if principal is None else principal.id,
        }

    @app.websocket("/api/v1/test/ws-boom")
    async def ws_boom(websocket: WebSocket) -> None:
        raise RuntimeError(SECRET_DETAIL)

    return app


class LogLines(logging.Handler):
    """Every log line as the service renders it (JSON), parsed back into a dict."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == event]


@contextmanager
def captured_logs() -> Iterator[LogLines]:
    """Call after ``create_app`` with ``log_format="json"``: it reuses the service's formatter."""
    root = logging.getLogger()
    handler = LogLines(root.handlers[0].formatter if root.handlers else None)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[LiveServer]:
    """A real uvicorn for an app built by the test (``live_server`` builds its own)."""
    server = LiveServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def http_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """Straight to loopback, whatever proxy the environment names."""
    return httpx.AsyncClient(base_url=base_url, trust_env=False, **kwargs)


def without_credentials(http: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client minus the credentials every test client sends (``AUTH_HEADERS``)."""
    for name in AUTH_HEADERS:
        http.headers.pop(name, None)
    return http


def without_auth_layers(app: FastAPI) -> FastAPI:
    """The app without the authentication layers features add (``Wiring.auth_layers``).

    For tests about anonymous callers (per-IP limits), who exist only where no
    feature requires credentials on /api/v1; the rest of the stack is unchanged.
    Call before the app serves its first request, which builds the stack.
    """
    layers = app.state.wiring.auth_layers
    app.user_middleware = [entry for entry in app.user_middleware if entry.cls not in layers]
    return app


def chat_ws_scope(subprotocols: list[str] | None = None) -> Scope:
    """The ASGI scope of a handshake to ``/api/v1/chat/ws`` from a server that has no
    denial-response extension, for calling the app without one."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/api/v1/chat/ws",
        "raw_path": b"/api/v1/chat/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "subprotocols": subprotocols or [],
    }
