"""The last line of defence: no exception leaves the app as a half-written response.

Innermost layer, so its 500 goes out through every other middleware and gets
the request ID, security headers and CORS headers like any other answer. The
client sees only the standard error body; the traceback goes to the log, tagged
with the request ID.
"""

from __future__ import annotations

from collections.abc import Awaitable

import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..asgi import WS_INTERNAL_ERROR
from . import deny

log = structlog.get_logger("errors")


def is_disconnect(exc: BaseException) -> bool:
    """A client leaving is not a server error, even wrapped in a task group's exception group."""
    if isinstance(exc, ClientDisconnect):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_disconnect(inner) for inner in exc.exceptions)
    return False


class ErrorBoundaryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        started = False

        # A plain function returning send's awaitable: no coroutine frame per token.
        def tracking_send(message: Message) -> Awaitable[None]:
            nonlocal started
            started = True
            return send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if is_disconnect(exc):
                return
            if started:
                log.error(
                    "unhandled_error.after_response_started", path=scope["path"], exc_info=exc
                )
                if kind == "websocket":
                    await self._close_websocket(send)
                return
            log.error("unhandled_error", path=scope["path"], exc_info=exc)
            await deny(scope, send, 500, "internal_error", "Internal server error.")

    @staticmethod
    async def _close_websocket(send: Send) -> None:
        try:
            await send(
                {
                    "type": "websocket.close",
                    "code": WS_INTERNAL_ERROR,
                    "reason": "Internal server error.",
                }
            )
        except Exception as exc:
            # The socket is already closed or broken; there is nobody left to tell.
            log.debug("websocket.close_failed", error=type(exc).__name__)
