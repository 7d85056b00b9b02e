"""A small SSE parser for tests, written to the WHATWG event-stream rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)


def parse_events(text: str) -> list[Event]:
    events: list[Event] = []
    current = Event()
    data_lines: list[str] = []
    touched = False
    for line in text.split("\n"):
        if line == "":
            if touched:
                current.data = "\n".join(data_lines)
                events.append(current)
            current, data_lines, touched = Event(), [], False
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        touched = True
        if name == "event":
            current.event = value
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            current.id = value
    return events


async def iter_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Events as they arrive; comments (keep-alives) are yielded as comment-only events."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith(":"):
                yield Event(event="comment", comments=[block[1:].strip()])
                continue
            yield from_block(block)


def from_block(block: str) -> Event:
    parsed = parse_events(block + "\n\n")
    return parsed[0] if parsed else Event()
