"""What every resolver gets: the core, the caller, and the caller's limits.

Over HTTP the middleware has already authenticated the request (the Principal
is in the scope state) and counted it against the caller's rate limit. Over
WebSocket the handshake went through the same layers; the ``connection_init``
payload may carry credentials too (``{"x-api-key": ...}`` or
``{"authorization": "Bearer ..."}``), which the same authenticators as gRPC
check, and which then decide who the connection's operations run as.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from starlette.requests import HTTPConnection, Request
from strawberry.fastapi import BaseContext

from ..asgi import request_id_of, unless_disconnected
from ..auth.authenticators import AuthenticationError, Authenticator
from ..auth.principal import Principal, get_principal
from ..chat.service import ChatService
from ..ratelimit.policy import Caller, RateLimitPolicy, caller_of
from .errors import RateLimited
from .settings import GraphQLSettings

T = TypeVar("T")


def payload_credentials(params: object) -> dict[str, str]:
    """The ``connection_init`` payload as authenticator metadata: lower-case keys, text values."""
    if not isinstance(params, Mapping):
        return {}
    return {
        str(name).lower(): value
        for name, value in params.items()
        if isinstance(value, str) and value
    }


async def authenticate_connection(
    authenticators: Sequence[Authenticator],
    metadata: Mapping[str, str],
    handshake: Principal | None,
) -> Principal | None:
    """Who a WebSocket connection runs as.

    Credentials in the payload win and must be valid (``AuthenticationError``
    otherwise). Without any, the handshake's Principal stands: the HTTP layers
    already refused a handshake that needed credentials and had none. This is
    ``auth.authenticators.authenticate`` plus that fallback.
    """
    for authenticator in authenticators:
        principal = await authenticator.authenticate(metadata)
        if principal is not None:
            return principal
    if handshake is None and any(authenticator.required for authenticator in authenticators):
        raise AuthenticationError()
    return handshake


class GraphQLContext(BaseContext):
    def __init__(
        self,
        *,
        service: ChatService,
        settings: GraphQLSettings,
        policy: RateLimitPolicy,
        request_id: str,
        principal: Principal | None,
        caller: Caller,
    ) -> None:
        super().__init__()
        self.service = service
        self.settings = settings
        self.policy = policy
        self.request_id = request_id
        self.principal = principal
        self.caller = caller

    async def on_connection_init(self, authenticators: Sequence[Authenticator]) -> None:
        """Authenticate a WebSocket from its ``connection_init`` payload."""
        connection = self.request
        assert connection is not None
        principal = await authenticate_connection(
            authenticators, payload_credentials(self.connection_params), self.principal
        )
        self.principal = principal
        self.caller = caller_of(self.policy, connection.scope, principal)

    async def charge(self, operation: str) -> None:
        """Count one request of ``operation`` against the caller, as its REST twin is counted.

        Over HTTP the rate-limit layer has already counted the request in the
        caller's bucket, so only an operation with a quota of its own
        (``RATE_LIMIT_ROUTES``) is counted here, in that quota's bucket. Over a
        WebSocket, whose handshake alone was counted, every operation is.
        """
        policy = self.policy
        if not policy.enabled:
            return
        if isinstance(self.request, Request) and operation not in policy.route_quotas:
            return
        verdict = await policy.check(self.caller, operation)
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after_seconds)

    @asynccontextmanager
    async def stream_slot(self) -> AsyncIterator[None]:
        """Hold one of the caller's concurrent-stream slots; raises ``TooManyStreams``."""
        if not self.policy.enabled:
            yield
            return
        async with self.policy.stream(self.caller):
            yield

    async def unless_disconnected(self, work: Awaitable[T]) -> T:
        """Await ``work``, cancelled if an HTTP client leaves first.

        A WebSocket operation needs no watcher: Strawberry cancels its task when
        the client completes it or goes away.
        """
        if isinstance(self.request, Request):
            return await unless_disconnected(self.request, work)
        return await work


def context_getter(
    service: ChatService, settings: GraphQLSettings, policy: RateLimitPolicy
) -> Callable[[HTTPConnection], Awaitable[GraphQLContext]]:
    """A FastAPI dependency building one context per HTTP request or WebSocket connection."""

    async def get_context(connection: HTTPConnection) -> GraphQLContext:
        scope = connection.scope
        principal = get_principal(scope)
        return GraphQLContext(
            service=service,
            settings=settings,
            policy=policy,
            request_id=request_id_of(scope),
            principal=principal,
            caller=caller_of(policy, scope, principal),
        )

    return get_context
