"""Native Server-Sent Events: named ``token``, ``usage``, ``done`` and ``error`` events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter

from ...chat.models import ChatEvent, ChatRequest
from ...errors import ERROR_RESPONSES
from ..deps import AppSettings, ChatCore, RequestId
from ..sse import SSEResponse, sse_frame
from .events import event_json

router = APIRouter(tags=["chat"])


async def sse_events(events: AsyncIterator[ChatEvent], request_id: str) -> AsyncIterator[bytes]:
    """Each core event as one named SSE event with a sequential ``id``."""
    index = 0
    async for event in events:
        yield sse_frame(event_json(event, request_id), event=event.type, id=index)
        index += 1


@router.post(
    "/chat/stream",
    response_class=SSEResponse,
    summary="Stream a chat answer as Server-Sent Events",
    responses={
        200: {
            "description": (
                "Named events: `token` (TokenMessage), `usage` (UsageMessage), "
                "`done` (DoneMessage) "
                "and `error` (ErrorMessage); every event has an `id`. Comments (`: ping`) keep an "
                "idle stream open."
            ),
            "content": {
                "text/event-stream": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/TokenMessage"},
                            {"$ref": "#/components/schemas/UsageMessage"},
                            {"$ref": "#/components/schemas/DoneMessage"},
                            {"$ref": "#/components/schemas/ErrorMessage"},
                        ]
                    },
                    "example": (
                        'event: token\nid: 0\ndata: {"type":"token","index":0,"text":"Hi"}\n\n'
                    ),
                }
            },
        },
        **ERROR_RESPONSES,
    },
)
async def chat_stream(
    body: ChatRequest, core: ChatCore, settings: AppSettings, request_id: RequestId
) -> SSEResponse:
    events = core.stream(body, transport="sse")
    return SSEResponse(
        sse_events(events, request_id), keepalive_seconds=settings.sse_keepalive_seconds
    )
