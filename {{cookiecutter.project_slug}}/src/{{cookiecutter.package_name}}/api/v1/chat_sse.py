"""Native Server-Sent Events: named ``token``, ``tool_call``, ``usage``, ``done``, ``error``."""

from __future__ import annotations

import itertools
from json.encoder import encode_basestring_ascii

from fastapi import APIRouter

from ...chat.messages import (
    DoneMessage,
    ErrorMessage,
    TokenMessage,
    ToolCallMessage,
    UsageMessage,
    event_json,
)
from ...chat.models import ChatEvent, ChatRequest, TokenEvent
from ...errors import ERROR_RESPONSES
from ..deps import Chat
from ..openapi import json_text, schema_ref, sse_event_schema
from ..sse import Formatter, SSEResponse, sse_frame

EVENT_MODELS = (TokenMessage, ToolCallMessage, UsageMessage, DoneMessage, ErrorMessage)

router = APIRouter(tags=["chat"])


def sse_formatter(request_id: str) -> Formatter:
    """Each core event as one named SSE event with a sequential ``id``."""
    ids = itertools.count()
    # json.dumps of a str is this function behind two more calls.
    dumps = encode_basestring_ascii

    def frame(event: ChatEvent) -> bytes:
        if type(event) is TokenEvent:
            # Tokens are the hot path: one f-string, no intermediate objects.
            return (
                f"event: token\nid: {next(ids)}\ndata: "
                f'{{"type":"token","index":{event.index},"text":{dumps(event.text)}}}\n\n'
            ).encode()
        return sse_frame(event_json(event, request_id), event=event.type, id=next(ids))

    return frame


@router.post(
    "/chat/stream",
    response_class=SSEResponse,
    summary="Stream a chat answer as Server-Sent Events",
    responses={
        200: {
            "description": (
                "Named events: `token` (TokenMessage), `tool_call` (ToolCallMessage), "
                "`usage` (UsageMessage), "
                "`done` (DoneMessage) "
                "and `error` (ErrorMessage); every event has an `id`. Comments (`: ping`) keep an "
                "idle stream open."
            ),
            "content": {
                "text/event-stream": {
                    "schema": sse_event_schema(
                        json_text({"oneOf": [schema_ref(model) for model in EVENT_MODELS]}),
                        events=("token", "tool_call", "usage", "done", "error"),
                        with_id=True,
                    ),
                    "example": (
                        'event: token\nid: 0\ndata: {"type":"token","index":0,"text":"Hi"}\n\n'
                    ),
                }
            },
        },
        **ERROR_RESPONSES,
    },
)
async def chat_stream(body: ChatRequest, chat: Chat) -> SSEResponse:
    return SSEResponse(
        await chat.core.stream(body, transport="sse"),
        format=sse_formatter(chat.request_id),
        keepalive_seconds=chat.settings.sse_keepalive_seconds,
    )
