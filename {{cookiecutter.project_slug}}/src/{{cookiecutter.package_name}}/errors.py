"""One error shape for every failure: ``{"code", "message", "request_id"}``.

Route errors go through FastAPI's exception handlers; middleware answers with
``send_error`` so that a 413 or a 429 looks exactly like a 422 or a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from .asgi import request_id_of
from .chat.errors import (
    CapacityExceeded,
    ChatError,
    ContextTooLong,
    GenerationTimeout,
    InvalidGenerationRequest,
    ServiceShuttingDown,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from .validation import describe_problems

logger = logging.getLogger(__name__)

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "unavailable",
    504: "timeout",
}


# A core error's HTTP status, by its code; other transports keep their own table
# beside their code. Anything not listed is a 500.
HTTP_STATUS_BY_CODE: dict[str, int] = {
    InvalidGenerationRequest.code: 400,
    ContextTooLong.code: 400,
    UpstreamRateLimited.code: 429,
    ChatError.code: 500,
    UpstreamError.code: 502,
    UpstreamUnavailable.code: 503,
    CapacityExceeded.code: 503,
    ServiceShuttingDown.code: 503,
    GenerationTimeout.code: 504,
}


def http_status_of(error: ChatError) -> int:
    return HTTP_STATUS_BY_CODE.get(error.code, 500)


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str = Field(description="Stable, machine-readable error code.", examples=["rate_limited"])
    message: str = Field(
        description="Human-readable explanation, safe to show to users.",
        examples=["Too many requests; retry after 12 seconds."],
    )
    request_id: str = Field(
        description="The request's ID, also in the X-Request-ID header and the logs.",
        examples=["0f8fad5b-d9cb-469f-a165-70867728950e"],
    )


# The content type is spelled out: FastAPI would otherwise document an error of a
# streaming route under the route's own media type, text/event-stream.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {
        "description": code.replace("_", " ").capitalize(),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for status, code in STATUS_CODES.items()
    if status in (400, 401, 413, 422, 429, 500, 503)
}


class APIError(Exception):
    """An error a route raises on purpose."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_payload(code: str, message: str, request_id: str) -> dict[str, str]:
    return {"code": code, "message": message, "request_id": request_id}


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    payload = error_payload(code, message, request_id_of(request.scope))
    return JSONResponse(payload, status_code=status_code, headers=headers)


async def send_error(
    send: Send,
    status_code: int,
    code: str,
    message: str,
    request_id: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer from pure ASGI middleware with the standard error body."""
    body = json.dumps(error_payload(code, message, request_id)).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def chat_error_headers(exc: ChatError) -> dict[str, str]:
    if exc.retry_after is not None:
        return {"Retry-After": str(max(1, round(exc.retry_after)))}
    return {}


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(request, exc.status_code, exc.code, exc.message, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(request, exc.status_code, code, message, dict(exc.headers or {}))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        request,
        422,
        "validation_error",
        describe_problems(exc.errors()) or "The request is invalid.",
    )


async def _on_chat_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatError)
    return error_response(
        request, http_status_of(exc), exc.code, exc.message, chat_error_headers(exc)
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ChatError, _on_chat_error)
