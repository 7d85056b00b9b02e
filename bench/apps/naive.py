"""The tutorial pattern: FastAPI, sse-starlette and five ``BaseHTTPMiddleware`` layers.

This is what many "stream LLM tokens with FastAPI" guides ship: each cross-cutting
concern is its own ``BaseHTTPMiddleware`` (request ID, security headers, body size,
CORS, access logging), the route is limited with slowapi's decorator, and the
stream is an ``EventSourceResponse`` fed with dicts. Every piece is written the
way such guides write it, doing the same job as the service's middleware, with
a limit high enough that it never refuses.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from source import DONE_JSON, STREAM_PATH, token_json, tokens, usage_json
from sse_starlette.sse import EventSourceResponse
from starlette.middleware.base import BaseHTTPMiddleware

CallNext = Callable[[Request], Awaitable[Response]]
ALLOWED_ORIGINS = {"https://example.com"}
MAX_BODY = 1_048_576

logger = logging.getLogger("naive.access")
logger.setLevel(logging.WARNING)


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    messages: list[Message]
    max_tokens: int = Field(default=16, ge=1, le=32_768)


class RequestIdMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        request.state.request_id = request_id
        response = await call_next(request)
        response.headers["X-Request-ID"] = request_id
        return response


class SecurityHeadersMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        response.headers["Strict-Transport-Security"] = "max-age=63072000"
        return response


class BodySizeMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        length = request.headers.get("content-length")
        if length is not None and int(length) > MAX_BODY:
            return JSONResponse({"detail": "Request body too large"}, status_code=413)
        return await call_next(request)


class CORSHeadersMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        origin = request.headers.get("origin")
        if request.method == "OPTIONS" and origin in ALLOWED_ORIGINS:
            return Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": "content-type, authorization",
                    "Vary": "Origin",
                },
            )
        response = await call_next(request)
        if origin in ALLOWED_ORIGINS:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response


class LoggingMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        logger.info(
            "%s %s %s %.2fms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - start) * 1000,
        )
        return response


limiter = Limiter(key_func=get_remote_address)
app = FastAPI()
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
# Added innermost first, as the guides list them top to bottom.
app.add_middleware(LoggingMiddleware)
app.add_middleware(CORSHeadersMiddleware)
app.add_middleware(BodySizeMiddleware)
app.add_middleware(SecurityHeadersMiddleware)
app.add_middleware(RequestIdMiddleware)


async def events(count: int) -> AsyncIterator[dict[str, Any]]:
    async for index, text in tokens(count):
        yield {"event": "token", "id": str(index), "data": token_json(index, text)}
    yield {"event": "usage", "id": str(count), "data": usage_json(count)}
    yield {"event": "done", "id": str(count + 1), "data": DONE_JSON}


@app.post(STREAM_PATH)
@limiter.limit("100000000/minute")
async def chat_stream(request: Request, body: ChatRequest) -> EventSourceResponse:
    return EventSourceResponse(events(body.max_tokens))
