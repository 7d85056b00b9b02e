"""Request rate limits and the concurrent-stream cap for ``/api/v1``, HTTP and WebSocket.

Runs after authentication, so a caller with a Principal is limited by its own
key (``key:<id>``/``user:<id>``) and anonymous callers by client address.
Every limited response carries ``RateLimit-Policy`` and ``RateLimit``; a
refusal adds ``Retry-After``. Generation routes also take one of the caller's
stream slots before the app runs and give it back when the ASGI call returns,
which is when the stream ended or the client left. WebSocket handshakes are
refused before they are accepted. A shared backend that cannot decide and is
configured to refuse (``RateLimiterUnavailable``) gets 503 instead of a guess.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..asgi import in_prefix, state_of
from ..auth.principal import get_principal
from ..ratelimit.base import RateLimiterUnavailable
from ..ratelimit.policy import Caller, RateLimitPolicy, Verdict, caller_of
from . import deny

STREAM_ROUTES = ("/chat/stream", "/chat/completions", "/chat/ws")
# The first message of a response, or of an accepted or refused WebSocket handshake.
HEADER_MESSAGES = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)

log = structlog.get_logger("ratelimit")
Header = tuple[bytes, bytes]


async def refuse_unavailable(
    scope: Scope, send: Send, exc: RateLimiterUnavailable, headers: Iterable[Header] = ()
) -> None:
    """503 when a shared backend is down and configured to refuse rather than guess."""
    retry_after = (b"retry-after", str(exc.retry_after_seconds).encode())
    await deny(scope, send, 503, exc.code, str(exc), [*headers, retry_after])


async def refuse_over_limit(
    scope: Scope, send: Send, caller: Caller, verdict: Verdict, **context: str
) -> None:
    """429 with ``Retry-After`` and the ``RateLimit`` headers, logged once."""
    seconds = verdict.retry_after_seconds
    log.info(
        "ratelimit.refused",
        caller=caller.key,
        policy=verdict.quota.name,
        retry_after=seconds,
        **context,
    )
    await deny(
        scope,
        send,
        429,
        "rate_limited",
        f"Too many requests; retry after {seconds} seconds.",
        verdict.headers(),
    )


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: RateLimitPolicy,
        api_prefix: str,
        stream_routes: Iterable[str] = STREAM_ROUTES,
    ) -> None:
        self.app = app
        self.policy = policy
        self.api_prefix = api_prefix
        self.stream_paths = frozenset(api_prefix + route for route in stream_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.policy.enabled
            or scope["type"] not in ("http", "websocket")
            or not in_prefix(scope["path"], self.api_prefix)
        ):
            await self.app(scope, receive, send)
            return

        policy = self.policy
        path: str = scope["path"]
        caller = caller_of(policy, scope, get_principal(scope))
        state_of(scope)["client_ip"] = caller.ip

        try:
            verdict = await policy.check(caller, path)
        except RateLimiterUnavailable as exc:
            await refuse_unavailable(scope, send, exc)
            return
        if not verdict.allowed:
            await refuse_over_limit(scope, send, caller, verdict)
            return
        limit_headers = verdict.headers()

        started = False

        # A plain function returning send's awaitable: no coroutine frame per token.
        def send_with_limits(message: Message) -> Awaitable[None]:
            nonlocal started
            if not started:
                started = True
                kind = message["type"]
                if kind in HEADER_MESSAGES:
                    message["headers"] = [*message.get("headers", ()), *limit_headers]
            return send(message)

        if path not in self.stream_paths:
            await self.app(scope, receive, send_with_limits)
            return

        try:
            lease = await policy.open_stream(caller)
        except RateLimiterUnavailable as exc:
            await refuse_unavailable(scope, send, exc, limit_headers)
            return
        if lease is None:
            log.info(
                "ratelimit.too_many_streams", caller=caller.key, max_streams=policy.max_streams
            )
            await deny(
                scope,
                send,
                429,
                "too_many_streams",
                f"At most {policy.max_streams} concurrent streams are allowed; close one first.",
                [*limit_headers, (b"retry-after", b"1")],
            )
            return
        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            await policy.close_stream(lease)
