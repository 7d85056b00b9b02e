"""Pure ASGI middleware and the few helpers they share.

Each middleware is a class whose ``__call__`` wraps ``send``/``receive`` only as
far as it must; nothing here runs the app in another task or buffers a
response, so streamed tokens pass every layer once with no extra awaits.
The ``send`` wrappers are plain functions that return the inner ``send``'s
awaitable instead of coroutines that await it: a stream calls them once per
token, and a coroutine frame per layer was most of what the stack cost.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Scope, Send

from ..asgi import WS_INTERNAL_ERROR, WS_POLICY_VIOLATION, request_id_of
from ..errors import send_error


def _as_websocket_denial(send: Send) -> Send:
    async def denial_send(message: Message) -> None:
        await send({**message, "type": "websocket." + message["type"]})

    return denial_send


async def deny(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Refuse an HTTP request or a WebSocket handshake with the standard error body.

    A WebSocket gets the same JSON as an HTTP response when the server supports
    the denial-response extension (uvicorn does); otherwise it is closed before
    being accepted, with a close code instead of a body.
    """
    request_id = request_id_of(scope)
    if scope["type"] == "http":
        await send_error(send, status, code, message, request_id, headers, path=scope["path"])
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send_error(
            _as_websocket_denial(send),
            status,
            code,
            message,
            request_id,
            headers,
            path=scope["path"],
        )
        return
    close_code = WS_INTERNAL_ERROR if status >= 500 else WS_POLICY_VIOLATION
    # The close reason must fit in a control frame (123 bytes).
    await send(
        {
            "type": "websocket.close",
            "code": close_code,
            "reason": message.encode()[:123].decode(errors="ignore"),
        }
    )
