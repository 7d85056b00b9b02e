"""The core's error codes as gRPC status codes, and how a call is ended with one."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from ..chat.errors import (
    CapacityExceeded,
    ContextTooLong,
    GenerationTimeout,
    InvalidGenerationRequest,
    ModelNotFound,
    ServiceShuttingDown,
    UpstreamRateLimited,
    UpstreamUnavailable,
)

# Anything not listed (upstream_error, generation_failed) is INTERNAL; its
# message is the core's, which never carries internals.
STATUS_BY_CODE: dict[str, grpc.StatusCode] = {
    UpstreamUnavailable.code: grpc.StatusCode.UNAVAILABLE,
    CapacityExceeded.code: grpc.StatusCode.UNAVAILABLE,
    ServiceShuttingDown.code: grpc.StatusCode.UNAVAILABLE,
    GenerationTimeout.code: grpc.StatusCode.DEADLINE_EXCEEDED,
    UpstreamRateLimited.code: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ContextTooLong.code: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidGenerationRequest.code: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound.code: grpc.StatusCode.NOT_FOUND,
}

# Trailing metadata naming the core's error code, so that clients can tell
# apart failures that share a status (capacity_exceeded and shutting_down).
ERROR_CODE_KEY = "x-error-code"
RETRY_AFTER_KEY = "retry-after"


def status_for(code: str) -> grpc.StatusCode:
    return STATUS_BY_CODE.get(code, grpc.StatusCode.INTERNAL)


async def abort_with_error(
    context: grpc.aio.ServicerContext[Any, Any],
    code: str,
    message: str,
    retry_after: float | None = None,
) -> NoReturn:
    """End the call with the status for a core error code; raises ``grpc.aio.AbortError``."""
    trailing = [(ERROR_CODE_KEY, code)]
    if retry_after is not None:
        trailing.append((RETRY_AFTER_KEY, str(max(1, round(retry_after)))))
    await context.abort(status_for(code), message, tuple(trailing))
