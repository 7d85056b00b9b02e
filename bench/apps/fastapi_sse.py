"""Two FastAPI apps without middleware that differ only in how SSE frames are written.

``sse_app`` uses FastAPI's own ``fastapi.sse`` (``EventSourceResponse`` as the
response class, an async generator of ``ServerSentEvent``); ``plain_app`` returns
a ``StreamingResponse`` of hand-written frames, which is what the service does.
Their ratio decides whether the service keeps writing frames itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from source import DONE_JSON, SSE_HEADERS, STREAM_PATH, sse_frames, token_json, tokens, usage_json


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    messages: list[Message]
    max_tokens: int = Field(default=16, ge=1, le=32_768)


sse_app = FastAPI()
plain_app = FastAPI()


@sse_app.post(STREAM_PATH, response_class=EventSourceResponse)
async def stream_sse(body: ChatRequest) -> AsyncIterator[ServerSentEvent]:
    count = body.max_tokens
    async for index, text in tokens(count):
        yield ServerSentEvent(raw_data=token_json(index, text), event="token", id=str(index))
    yield ServerSentEvent(raw_data=usage_json(count), event="usage", id=str(count))
    yield ServerSentEvent(raw_data=DONE_JSON, event="done", id=str(count + 1))


@plain_app.post(STREAM_PATH)
async def stream_plain(body: ChatRequest) -> StreamingResponse:
    return StreamingResponse(
        sse_frames(body.max_tokens), media_type="text/event-stream", headers=SSE_HEADERS
    )
