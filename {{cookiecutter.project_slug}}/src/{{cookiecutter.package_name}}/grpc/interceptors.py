"""Server interceptors: request IDs and the access log, authentication, rate limits.

They run outermost first, in the order ``server.py`` lists them: the call log
sees the final status of every call, including ones the inner two refused, and
the rate limiter keys on the principal that authentication found. Authentication
and limits apply to the chat service only; health checks and reflection stay
open, as ``/healthz`` does over HTTP.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

import grpc
import structlog

from ..asgi import VALID_REQUEST_ID
from ..auth.authenticators import AuthenticationError, Authenticator, authenticate
from ..auth.principal import Principal
from ..ratelimit.base import RateLimiterUnavailable
from ..ratelimit.policy import RateLimitPolicy, TooManyStreams, parse_ip
from .handlers import Context, metadata_map, service_of, wrap_handler
from .status import RETRY_AFTER_KEY

if TYPE_CHECKING:
    from .handlers import Continuation, Handler

REQUEST_ID_KEY = "x-request-id"
FORWARDED_FOR_KEY = "x-forwarded-for"
INTERNAL_MESSAGE = "Internal error."

access_log = structlog.get_logger("access")
log = structlog.get_logger("grpc")


@dataclass(slots=True)
class CallInfo:
    """What the interceptors learn about one call, for the access log."""

    request_id: str
    principal: Principal | None = None
    client_ip: str | None = None


# grpc.aio runs every call in its own task, so this is per call.
_current_call: ContextVar[CallInfo | None] = ContextVar("grpc_call", default=None)


def current_call() -> CallInfo:
    call = _current_call.get()
    if call is None:
        call = CallInfo(request_id=str(uuid.uuid4()))
        _current_call.set(call)
    return call


def peer_ip(peer: str | None) -> str | None:
    """``ipv4:127.0.0.1:5000`` -> ``127.0.0.1``; ``ipv6:%5B::1%5D:5000`` -> ``::1``."""
    if not peer:
        return None
    kind, _, rest = unquote(peer).partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    address = parse_ip(rest.rpartition(":")[0])
    return None if address is None else str(address)


def final_code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with, for the log.

    A client's deadline usually reaches the server as a cancellation just before
    the server's copy of it passes, so some of those are logged as CANCELLED.
    """
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    if error is not None:
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.OK


class CallLogInterceptor(grpc.aio.ServerInterceptor):
    """Request IDs, one access-log line per call, and no internals in any status.

    The ID comes from ``x-request-id`` metadata when valid, else is new; it is
    sent back in the initial metadata and bound to every log line of the call.
    An unexpected exception is logged with its trace and reaches the client as
    INTERNAL with a generic message (grpc.aio would put the exception's text in
    the status details).
    """

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        incoming = metadata_map(handler_call_details.invocation_metadata).get(REQUEST_ID_KEY)

        @asynccontextmanager
        async def around(context: Context) -> AsyncIterator[None]:
            request_id = incoming if incoming and VALID_REQUEST_ID.fullmatch(incoming) else None
            call = CallInfo(request_id=request_id or str(uuid.uuid4()))
            call.client_ip = peer_ip(context.peer())
            _current_call.set(call)
            # No reset needed: the call's task, and its copy of the context, end with it.
            structlog.contextvars.bind_contextvars(request_id=call.request_id)
            await context.send_initial_metadata(((REQUEST_ID_KEY, call.request_id),))
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                yield
            except grpc.aio.AbortError as exc:
                error = exc
                raise
            except Exception as exc:
                error = exc
                log.exception("grpc.unhandled_error", rpc=method)
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
            except BaseException as exc:
                error = exc
                raise
            finally:
                access_log.info(
                    "grpc.request",
                    rpc=method,
                    code=final_code(context, error).name,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    client_ip=call.client_ip,
                    principal=call.principal.id if call.principal is not None else None,
                )

        return wrap_handler(handler, around)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """The same authenticators as the rest of the service: ``x-api-key``, and any a
    feature added (``authorization: Bearer``). Refusals are UNAUTHENTICATED."""

    def __init__(self, authenticators: Sequence[Authenticator], services: frozenset[str]) -> None:
        # The list itself, not a copy: features installed later may still append.
        self._authenticators = authenticators
        self._services = services

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or service_of(method) not in self._services:
            return handler
        metadata = metadata_map(handler_call_details.invocation_metadata)
        authenticators = self._authenticators

        @asynccontextmanager
        async def around(context: Context) -> AsyncIterator[None]:
            try:
                principal = await authenticate(authenticators, metadata)
            except AuthenticationError as exc:
                log.info("auth.refused", rpc=method, reason=exc.message)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            current_call().principal = principal
            yield

        return wrap_handler(handler, around)


async def refuse_unavailable(
    context: Context,
    method: str,
    exc: RateLimiterUnavailable,
    pairs: Sequence[tuple[str, str]] = (),
) -> None:
    """UNAVAILABLE, HTTP's 503: a shared backend is down and set to refuse rather than guess."""
    log.warning("ratelimit.unavailable", rpc=method, retry_after=exc.retry_after_seconds)
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        str(exc),
        (*pairs, (RETRY_AFTER_KEY, str(exc.retry_after_seconds))),
    )


class RateLimitInterceptor(grpc.aio.ServerInterceptor):
    """HTTP's request rate and stream cap, through the same policy and backend.

    The operation ``RATE_LIMIT_ROUTES`` matches is the full method name, e.g.
    ``/streaming.v1.ChatService/StreamChat``. Every generation holds one of the
    caller's stream slots until its call ends. Refusals are RESOURCE_EXHAUSTED
    with ``retry-after`` (and the ``ratelimit`` pairs) in the trailing metadata;
    a shared backend that is down and set to refuse gives UNAVAILABLE.
    """

    def __init__(self, policy: RateLimitPolicy, services: frozenset[str]) -> None:
        self._policy = policy
        self._services = services

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        policy = self._policy
        if handler is None or not policy.enabled or service_of(method) not in self._services:
            return handler
        forwarded_for = metadata_map(handler_call_details.invocation_metadata).get(
            FORWARDED_FOR_KEY
        )

        @asynccontextmanager
        async def around(context: Context) -> AsyncIterator[None]:
            call = current_call()
            caller = policy.caller(call.principal, peer_ip(context.peer()), forwarded_for)
            call.client_ip = caller.ip
            try:
                verdict = await policy.check(caller, method)
            except RateLimiterUnavailable as exc:
                await refuse_unavailable(context, method, exc)
            pairs = tuple((key.decode(), value.decode()) for key, value in verdict.headers())
            if not verdict.allowed:
                seconds = verdict.retry_after_seconds
                log.info(
                    "ratelimit.refused",
                    rpc=method,
                    caller=caller.key,
                    policy=verdict.quota.name,
                    retry_after=seconds,
                )
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Too many requests; retry after {seconds} seconds.",
                    pairs,
                )
            async with AsyncExitStack() as stack:
                try:
                    await stack.enter_async_context(policy.stream(caller))
                except TooManyStreams as exc:
                    log.info(
                        "ratelimit.too_many_streams",
                        rpc=method,
                        caller=caller.key,
                        max_streams=exc.max_streams,
                    )
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        str(exc),
                        (*pairs, (RETRY_AFTER_KEY, "1")),
                    )
                except RateLimiterUnavailable as exc:
                    await refuse_unavailable(context, method, exc, pairs)
                context.set_trailing_metadata(pairs)
                yield

        return wrap_handler(handler, around)
