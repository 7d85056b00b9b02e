"""Server-Sent Events framing and the streaming response that carries it.

Frames are written by hand into a ``StreamingResponse`` subclass rather than with
``fastapi.sse``: its per-event model, two memory streams and two tasks per
response cost more than the 10% of streaming throughput this service allows
itself (see the benchmarks). Starlette still owns disconnect detection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Send

KEEPALIVE = b": ping\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_frame(data: str, *, event: str | None = None, id: str | int | None = None) -> bytes:
    """One event. ``data`` must be a single line (compact JSON always is)."""
    head = ""
    if event is not None:
        head += f"event: {event}\n"
    if id is not None:
        head += f"id: {id}\n"
    return f"{head}data: {data}\n\n".encode()


class SSEResponse(StreamingResponse):
    """``text/event-stream`` with ``\\n`` framing and keep-alive comments while idle.

    Headers go out before the first event. A timer, not a task per stream, checks
    for idleness, so an open stream costs no extra task.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[bytes],
        *,
        keepalive_seconds: float,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            content, status_code=status_code, headers={**SSE_HEADERS, **(headers or {})}
        )
        self._keepalive = keepalive_seconds

    async def stream_response(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        interval = self._keepalive
        last_write = loop.time()
        sending = False
        pings: set[asyncio.Task[None]] = set()
        timer: asyncio.TimerHandle | None = None

        async def ping() -> None:
            nonlocal last_write
            last_write = loop.time()
            await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})

        def tick() -> None:
            nonlocal timer
            if not sending and loop.time() - last_write >= interval * 0.99:
                task = loop.create_task(ping())
                pings.add(task)
                task.add_done_callback(pings.discard)
            timer = loop.call_later(interval, tick)

        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        timer = loop.call_later(interval, tick)
        try:
            async for chunk in self.body_iterator:
                sending = True
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sending = False
                last_write = loop.time()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if timer is not None:
                timer.cancel()
            for task in pings:
                task.cancel()
