"""Server-Sent Events framing and the streaming response that carries it.

Frames are written by hand rather than with ``fastapi.sse``: its per-event
model, two memory streams and two tasks per response cost about 90% of the
streaming throughput in the benchmarks (bench/RESULTS.md). Starlette's
``StreamingResponse`` still owns disconnect detection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Send

from ..chat.models import ChatEvent
from ..chat.service import Generation

KEEPALIVE = b": ping\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# Turns one core event into the bytes of its frame(s); b"" sends nothing.
Formatter = Callable[[ChatEvent], bytes]


def sse_frame(data: str, *, event: str | None = None, id: str | int | None = None) -> bytes:
    """One event. ``data`` must be a single line (compact JSON always is)."""
    head = ""
    if event is not None:
        head += f"event: {event}\n"
    if id is not None:
        head += f"id: {id}\n"
    return f"{head}data: {data}\n\n".encode()


class SSEResponse(StreamingResponse):
    """``text/event-stream`` of core events, with keep-alive comments while idle.

    The response formats each event itself instead of iterating a generator of
    frames: on the hot path every generator layer costs about a microsecond per
    token. Headers go out before the first event. A timer, not a task per stream,
    checks for idleness.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        generation: Generation,
        *,
        format: Formatter,
        keepalive_seconds: float,
        preamble: bytes = b"",
        epilogue: bytes = b"",
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # StreamingResponse.__init__ would wrap a content iterator; this response
        # has none, so only what __call__ needs is set up.
        self.status_code = status_code
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})
        self._events = generation.rest
        self._format = format
        self._first = generation.first
        self._preamble = preamble
        self._epilogue = epilogue
        self._keepalive = keepalive_seconds

    async def stream_response(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        interval = self._keepalive
        # Idleness is judged by whether a frame went out since the last tick, so
        # the per-token path does not read the clock.
        written = 0
        seen_at_tick = 0
        sending = False
        pings: set[asyncio.Task[None]] = set()
        timer: asyncio.TimerHandle | None = None
        fmt = self._format

        async def ping() -> None:
            await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})

        def tick() -> None:
            nonlocal timer, seen_at_tick
            idle = written == seen_at_tick
            seen_at_tick = written
            if idle and not sending:
                task = loop.create_task(ping())
                pings.add(task)
                task.add_done_callback(pings.discard)
            timer = loop.call_later(interval, tick)

        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        timer = loop.call_later(interval, tick)
        try:
            head = self._preamble
            if self._first is not None:
                head += fmt(self._first)
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
            async for event in self._events:
                frame = fmt(event)
                if frame:
                    sending = True
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                    sending = False
                    written += 1
            await send({"type": "http.response.body", "body": self._epilogue, "more_body": False})
        finally:
            if timer is not None:
                timer.cancel()
            for task in pings:
                task.cancel()
