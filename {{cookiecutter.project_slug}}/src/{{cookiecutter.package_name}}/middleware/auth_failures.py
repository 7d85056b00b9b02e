"""Refused credentials count against the caller's address, like anonymous requests.

The rate-limit layer runs after authentication (so that a key or a user is
limited by its own quota), which means a request whose credentials are refused
never reaches it: without this layer, API keys and tokens could be guessed as
fast as the service answers 401s. This layer sits outside every auth layer and
watches for their 401: each one is charged to the client address (the
``RATE_LIMIT_IP`` quota, or the route's override), and once that budget is spent
the 401 is replaced by a 429 with ``Retry-After``. Only refused requests are
affected: a caller whose credentials are good is never held back by this.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..asgi import in_prefix
from ..ratelimit.base import RateLimiterUnavailable
from ..ratelimit.policy import RateLimitPolicy, caller_of
from .rate_limit import HEADER_MESSAGES, refuse_over_limit

UNAUTHORIZED = 401


async def _dropped() -> None:
    """What the inner app's remaining messages turn into once its 401 was replaced."""


class AuthFailureLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: RateLimitPolicy,
        api_prefix: str,
        guarded: bool,
    ) -> None:
        self.app = app
        self.policy = policy
        self.api_prefix = api_prefix
        # Without any credentials to check there is nothing to guess.
        self.active = guarded and self.policy.enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.active
            or scope["type"] not in ("http", "websocket")
            or not in_prefix(scope["path"], self.api_prefix)
        ):
            await self.app(scope, receive, send)
            return

        first = True
        replaced = False

        async def answer_refusal(message: Message) -> None:
            nonlocal replaced
            replaced = await self._over_budget(scope, send)
            if not replaced:
                await send(message)

        # A plain function returning send's awaitable: past the first message it
        # only forwards, so a stream's tokens pay one call each here.
        def send_watching(message: Message) -> Awaitable[None]:
            nonlocal first
            if first:
                first = False
                if message["type"] in HEADER_MESSAGES and message.get("status") == UNAUTHORIZED:
                    return answer_refusal(message)
            elif replaced:
                return _dropped()
            return send(message)

        await self.app(scope, receive, send_watching)

    async def _over_budget(self, scope: Scope, send: Send) -> bool:
        """Charge one refused request to its address; ``True`` once a 429 went out instead."""
        policy = self.policy
        caller = caller_of(policy, scope, None)
        try:
            verdict = await policy.check(caller, scope["path"])
        except RateLimiterUnavailable:
            # The refusal stands on its own; it needs no limiter to be answered.
            return False
        if verdict.allowed:
            return False
        await refuse_over_limit(scope, send, caller, verdict, reason="credentials_refused")
        return True
