"""Refuse request bodies larger than ``max_size`` bytes.

A declared ``Content-Length`` over the limit is refused before a byte of the
body is read. A body without one (chunked) is counted as it arrives; the chunk
that would cross the limit is never handed to the app: the client gets a 413
at once and the app sees a disconnect, so it stops reading and its own answer
is dropped. An HTTP/1.x request with neither ``Content-Length`` nor
``Transfer-Encoding`` has no body at all (RFC 9112, section 6.3), so most GETs
pass with nothing wrapped; HTTP/2 and later frame bodies without either header,
so there a body without ``Content-Length`` is always counted.

Why not Starlette's ``RequestBodyLimitMiddleware``: it answers in plain text
rather than the service's JSON error shape, checks only when the app reads, and
ignores a malformed ``Content-Length`` instead of refusing it.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import deny

DISCONNECT: Message = {"type": "http.disconnect"}
HTTP1 = frozenset({"1.0", "1.1"})


async def _dropped() -> None:
    """What the app's answer turns into once the 413 went out instead."""


def declared_length(scope: Scope) -> int | None:
    """The ``Content-Length``; ``-1`` when it is malformed or ambiguous, ``None`` when absent."""
    values = [value for key, value in scope["headers"] if key == b"content-length"]
    if not values:
        return None
    distinct = {bytes(value).strip() for value in values}
    if len(distinct) != 1:
        return -1
    (raw,) = distinct
    # int() would accept "+5", " 5", "5_0" and non-ASCII digits; HTTP does not.
    if not raw or not raw.isdigit() or len(raw) > 19:
        return -1
    return int(raw)


def may_have_body(scope: Scope) -> bool:
    """Whether a request without ``Content-Length`` can still carry a body."""
    if scope.get("http_version", "1.1") not in HTTP1:
        return True
    return any(key == b"transfer-encoding" for key, _ in scope["headers"])


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_size: int) -> None:
        self.app = app
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length == -1:
            await deny(scope, send, 400, "bad_request", "The Content-Length header is invalid.")
            return
        max_size = self.max_size
        if length is not None:
            if length > max_size:
                await deny(scope, send, 413, "request_too_large", self._too_large())
                return
            # The server delivers no more than a declared length, so only bodies
            # without one need counting; the rest skip the wrappers entirely.
            await self.app(scope, receive, send)
            return
        if not may_have_body(scope):
            await self.app(scope, receive, send)
            return

        received = 0
        refused = False
        answered = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused, answered
            if refused:
                return DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_size:
                    refused = True
                    if not response_started:
                        answered = True
                        await deny(scope, send, 413, "request_too_large", self._too_large())
                    return DISCONNECT
            return message

        # A plain function returning send's awaitable: no coroutine frame per token.
        def guarded_send(message: Message) -> Awaitable[None]:
            nonlocal response_started
            if answered:
                # The 413 is already out; whatever the app answers is dropped.
                return _dropped()
            response_started = True
            return send(message)

        await self.app(scope, limited_receive, guarded_send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_size} bytes."
