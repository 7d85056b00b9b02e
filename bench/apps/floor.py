"""The floor: bare Starlette, one route, a ``StreamingResponse`` of SSE frames, no middleware.

Nothing can stream the same frames through Starlette for less, so the service's
throughput is judged against this app.
"""

from __future__ import annotations

import json

from source import SSE_HEADERS, STREAM_PATH, max_tokens, sse_frames
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def chat_stream(request: Request) -> StreamingResponse:
    count = max_tokens(json.loads(await request.body()))
    return StreamingResponse(sse_frames(count), media_type="text/event-stream", headers=SSE_HEADERS)


app = Starlette(routes=[Route(STREAM_PATH, chat_stream, methods=["POST"])])
