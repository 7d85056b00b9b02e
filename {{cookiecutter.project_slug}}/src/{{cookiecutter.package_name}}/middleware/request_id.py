"""Request IDs, the access log and request metrics, for HTTP and WebSocket.

Outermost layer, so the ID is bound before anything else logs and the access
line sees the final status of every response, including ones other middleware
refused. A stream is logged once, when its ASGI call returns.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Awaitable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..asgi import VALID_REQUEST_ID, get_header, state_of
from ..auth.principal import get_principal
from ..errors import STATUS_CODES
from ..observability.logging import info_enabled
from ..observability.metrics import Metrics

HEADER = b"x-request-id"

# Unmatched paths are one label, not one each: a scanner hitting random URLs
# must not create unbounded metric series.
UNMATCHED_ROUTE = "<unmatched>"
# Logged when the call ends with nothing sent: the client left first (nginx's code).
CLIENT_CLOSED = 499
ERROR_CODES = {**STATUS_CODES, CLIENT_CLOSED: "client_closed_request"}

access_log = structlog.get_logger("access")
# The stdlib logger behind it, for the level check (``info_enabled``).
access_logger = logging.getLogger("access")
UUID_VARIANT = "89ab89ab89ab89ab"


def new_request_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` gives it, in half the time."""
    h = os.urandom(16).hex()
    # Version nibble 4; variant bits 10 (the nibble becomes 8, 9, a or b).
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{UUID_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


def incoming_id(scope: Scope) -> str | None:
    raw = get_header(scope, HEADER)
    if raw is None:
        return None
    value = raw.decode("latin-1")
    return value if VALID_REQUEST_ID.fullmatch(value) else None


def route_template(scope: Scope) -> str | None:
    """The matched route's path template, e.g. ``/api/v1/items/{item_id}``.

    The router leaves the matched route in ``scope["route"]``, but a route from an
    included router knows only its own part (``/chat/stream``), not the prefix it
    was included under. The prefix is whatever the route's pattern does not
    match: the shortest leading run of path segments after which it matches.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    pattern = getattr(route, "path_regex", None)
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if pattern is None:
        return template
    return _full_template(template, pattern, path)


# The answer depends only on these three, and most requests repeat a path: the
# regex walk runs once per distinct path (up to the cache size), not per request.
@functools.lru_cache(maxsize=4096)
def _full_template(template: str, pattern: re.Pattern[str], path: str) -> str:
    if pattern.match(path):
        return template
    slash = path.find("/", 1)
    while slash != -1:
        if pattern.match(path[slash:]):
            return path[:slash] + template
        slash = path.find("/", slash + 1)
    return template


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return

        request_id = incoming_id(scope) or new_request_id()
        state_of(scope)["request_id"] = request_id
        id_header = (HEADER, request_id.encode())
        status = 0
        started = False

        # A plain function returning send's awaitable: no coroutine frame per token.
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal status, started
            if not started:
                status, message = _on_first_message(message, id_header)
                started = status != 0
            return send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Only reached if an exception escapes the error boundary; the
            # server answers 500 for it. Cancellation is a client gone (499).
            if not started:
                status = 500
            raise
        finally:
            self._record(scope, status or CLIENT_CLOSED, time.perf_counter() - start)
            structlog.contextvars.reset_contextvars(**tokens)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope.get("method", "WEBSOCKET")
        template = route_template(scope)
        if info_enabled(access_logger):
            path: str = scope["path"]
            state: dict[str, Any] = scope.get("state") or {}
            principal = get_principal(scope)
            client = scope.get("client")
            access_log.info(
                "request",
                method=method,
                path=path,
                route=template or path,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client_ip=state.get("client_ip") or (client[0] if client else None),
                principal=principal.id if principal is not None else None,
            )
        self.metrics.observe_request(method, template or UNMATCHED_ROUTE, status, seconds)
        if status >= 400:
            self.metrics.count_error(status, ERROR_CODES.get(status, "error"))


def _on_first_message(message: Message, id_header: tuple[bytes, bytes]) -> tuple[int, Message]:
    """The status the first message sets (0 if it sets none) and the message with the ID header."""
    kind = message["type"]
    if kind == "http.response.start" or kind == "websocket.http.response.start":
        message["headers"] = [*message.get("headers", ()), id_header]
        return message["status"], message
    if kind == "websocket.accept":
        message["headers"] = [*message.get("headers", ()), id_header]
        return 101, message
    if kind == "websocket.close":
        # Closed before the handshake completed: the server answers 403.
        return 403, message
    return 0, message
