"""Error bodies, in the shape of the API a request is for.

The native routes answer ``{"code", "message", "request_id"}``; the
OpenAI-compatible routes answer OpenAI's ``{"error": {"message", "type", "param",
"code"}}``, the shape its SDKs read (``ERROR_SHAPES`` says which path speaks
which). Route errors go through FastAPI's exception handlers; middleware answers
with ``send_error``, so a 413 or a 429 from a layer looks exactly like an error
from the route behind it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from .asgi import API_PREFIX, in_prefix, request_id_of
from .chat.errors import (
    CapacityExceeded,
    ChatError,
    ContextTooLong,
    GenerationTimeout,
    InvalidGenerationRequest,
    ModelNotFound,
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
    ModelNotFound.code: 404,
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
    if status in (400, 401, 404, 413, 422, 429, 500, 503)
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


class OpenAIErrorDetail(BaseModel):
    message: str = Field(
        description="Human-readable explanation, safe to show to users.",
        examples=["The model `gpt-9` does not exist or you do not have access to it."],
    )
    type: str = Field(
        description="Error category, as OpenAI names them.", examples=["invalid_request_error"]
    )
    param: str | None = Field(
        description="The request field the error is about, if any.", examples=["model"]
    )
    code: str | None = Field(
        description="Stable, machine-readable code.", examples=["model_not_found"]
    )


class OpenAIErrorBody(BaseModel):
    """The body of every error of the OpenAI-compatible routes (request ID in X-Request-ID)."""

    error: OpenAIErrorDetail


# OpenAI's error types by status; the official SDKs pick their exception class
# from the status (400 BadRequestError, 401 AuthenticationError, ...).
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


# The OpenAI-compatible routes document OpenAI's error body.
OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {
        "description": code.replace("_", " ").capitalize(),
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/OpenAIErrorBody"}}
        },
    }
    for status, code in STATUS_CODES.items()
    if status in (400, 401, 404, 413, 429, 500, 503)
}


class ErrorShape(Protocol):
    def __call__(
        self, status: int, code: str, message: str, request_id: str, param: str | None
    ) -> dict[str, object]: ...


def native_error(
    status: int, code: str, message: str, request_id: str, param: str | None
) -> dict[str, object]:
    return {"code": code, "message": message, "request_id": request_id}


def openai_error(
    status: int, code: str, message: str, request_id: str, param: str | None
) -> dict[str, object]:
    kind = OPENAI_ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# Which error shape each API speaks, by path prefix; every other path is native.
ERROR_SHAPES: tuple[tuple[str, ErrorShape], ...] = (
    (API_PREFIX + "/chat/completions", openai_error),
    (API_PREFIX + "/models", openai_error),
)
# Validation failures: OpenAI's clients expect a 400 that names the field.
VALIDATION_STATUS = {openai_error: 400}


def shape_for(path: str) -> ErrorShape:
    for prefix, shape in ERROR_SHAPES:
        if in_prefix(path, prefix):
            return shape
    return native_error


def error_payload(code: str, message: str, request_id: str) -> dict[str, object]:
    """The native body (for transports that are not HTTP routes)."""
    return native_error(0, code, message, request_id, None)


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    shape = shape_for(request.scope["path"])
    payload = shape(status_code, code, message, request_id_of(request.scope), param)
    return JSONResponse(payload, status_code=status_code, headers=headers)


async def send_error(
    send: Send,
    status_code: int,
    code: str,
    message: str,
    request_id: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    path: str = "",
) -> None:
    """Answer from pure ASGI middleware with the error body of ``path``'s API."""
    body = json.dumps(shape_for(path)(status_code, code, message, request_id, None)).encode()
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
    problems = exc.errors()
    status = VALIDATION_STATUS.get(shape_for(request.scope["path"]), 422)
    return error_response(
        request,
        status,
        "validation_error",
        describe_problems(problems) or "The request is invalid.",
        param=field_of(problems),
    )


def field_of(problems: object) -> str | None:
    """The first problem's field, as a dotted path inside the body (``messages.0.role``)."""
    if not isinstance(problems, list | tuple) or not problems:
        return None
    location = [str(part) for part in problems[0].get("loc", ())]
    if location[:1] == ["body"]:
        location = location[1:]
    # A tagged union puts its tag in the location (response_format.json_schema.
    # json_schema.schema); the field is named once.
    named = [part for index, part in enumerate(location) if location[index - 1 : index] != [part]]
    return ".".join(named) or None


async def _on_chat_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatError)
    return error_response(
        request,
        http_status_of(exc),
        exc.code,
        exc.message,
        chat_error_headers(exc),
        param=exc.param,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ChatError, _on_chat_error)
