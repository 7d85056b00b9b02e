"""The fake token source every bench app streams from.

It produces the same tokens and frames as the service's fake provider for the
prompt ``"bench"``: ``"bench"`` then ``" bench"``, one ``event: token`` frame each,
then ``usage`` and ``done``. Pacing comes from the same environment variables the
service reads, so a paced run configures every app the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

WORD = "bench"
DELAY = float(os.environ.get("FAKE_LLM_DELAY_MS", "0")) / 1000
FIRST_DELAY = float(os.environ.get("FAKE_LLM_FIRST_TOKEN_DELAY_MS", "0")) / 1000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
STREAM_PATH = "/api/v1/chat/stream"


async def tokens(count: int) -> AsyncIterator[tuple[int, str]]:
    """``count`` tokens paced like the service's fake provider."""
    if FIRST_DELAY:
        await asyncio.sleep(FIRST_DELAY)
    delay = DELAY
    for index in range(count):
        if index and delay:
            await asyncio.sleep(delay)
        yield index, WORD if index == 0 else " " + WORD


def token_json(index: int, text: str) -> str:
    return f'{{"type":"token","index":{index},"text":{json.dumps(text)}}}'


def usage_json(count: int) -> str:
    return (
        f'{{"type":"usage","prompt_tokens":1,"completion_tokens":{count},'
        f'"total_tokens":{count + 1}}}'
    )


DONE_JSON = '{"type":"done","finish_reason":"length"}'


def frame(data: str, event: str, id: int) -> bytes:
    return f"event: {event}\nid: {id}\ndata: {data}\n\n".encode()


async def sse_frames(count: int) -> AsyncIterator[bytes]:
    """Hand-written frames, byte for byte what the service sends."""
    async for index, text in tokens(count):
        yield frame(token_json(index, text), "token", index)
    yield frame(usage_json(count), "usage", count)
    yield frame(DONE_JSON, "done", count + 1)


def max_tokens(payload: object, default: int = 16) -> int:
    if isinstance(payload, dict):
        value = payload.get("max_tokens", default)
        if isinstance(value, int) and value > 0:
            return value
    return default
