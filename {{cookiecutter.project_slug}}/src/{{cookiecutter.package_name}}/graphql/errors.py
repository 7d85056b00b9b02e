"""GraphQL errors carry the REST error codes in ``extensions``.

Every error leaves with ``extensions.code`` (the same codes as the REST error
body: ``rate_limited``, ``too_many_streams``, ``rate_limiter_unavailable``,
``validation_error``, the core's ``ChatError`` codes, ``internal_error``...)
and ``extensions.request_id``.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.utils.str_converters import to_camel_case

from ..chat.errors import ChatError
from ..ratelimit.base import RateLimiterUnavailable
from ..ratelimit.policy import TooManyStreams
from ..validation import Location, describe_problems

INTERNAL_ERROR = "internal_error"
INTERNAL_MESSAGE = "Internal server error."
# Documents that fail to parse or validate (depth, aliases, tokens, unknown fields).
BAD_REQUEST = "bad_request"


class RequestRefused(Exception):
    """An error a resolver raises on purpose; ``message`` is safe to show."""

    code = "bad_request"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class RateLimited(RequestRefused):
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many requests; retry after {retry_after} seconds.", retry_after=retry_after
        )


class InvalidInput(RequestRefused):
    code = "validation_error"


def camel_case_path(location: Location) -> str:
    return ".".join(
        to_camel_case(part) if isinstance(part, str) else str(part) for part in location
    )


def describe_validation(error: ValidationError) -> str:
    """The first few problems, named by their GraphQL (camelCase) field paths."""
    return describe_problems(error.errors(), name=camel_case_path)


def classify(error: GraphQLError) -> tuple[str, dict[str, Any]]:
    """The error's code and any extra ``extensions`` (``retry_after``)."""
    given = (error.extensions or {}).get("code")
    if isinstance(given, str):
        return given, {}
    original = error.original_error
    if original is None:
        return BAD_REQUEST, {}
    if isinstance(original, GraphQLError):
        return classify(original)
    if isinstance(original, RequestRefused):
        return original.code, dict(original.extensions)
    if isinstance(original, ChatError):
        if original.retry_after is not None:
            return original.code, {"retry_after": max(1, round(original.retry_after))}
        return original.code, {}
    if isinstance(original, TooManyStreams):
        return original.code, {"retry_after": 1}
    if isinstance(original, RateLimiterUnavailable):
        return original.code, {"retry_after": original.retry_after_seconds}
    if isinstance(original, ValidationError):
        return "validation_error", {}
    if isinstance(
        original, MissingQueryError | CannotGetOperationTypeError | InvalidOperationTypeError
    ):
        return BAD_REQUEST, {}
    if isinstance(original, ClientDisconnect):
        return "client_closed_request", {}
    return INTERNAL_ERROR, {}


def stamp(error: GraphQLError, request_id: str) -> str:
    """Put the code and the request ID into the error's ``extensions``; return the code."""
    code, extra = classify(error)
    error.extensions = {**(error.extensions or {}), **extra, "code": code, "request_id": request_id}
    return code


def is_internal(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == INTERNAL_ERROR
