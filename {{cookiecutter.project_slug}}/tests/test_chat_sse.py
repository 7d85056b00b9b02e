"""The native SSE endpoint: named events, ids, framing, headers and keep-alives."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx

from sse_client import iter_events, parse_events

CHAT = {"messages": [{"role": "user", "content": "streams carry tokens"}], "max_tokens": 5}


async def test_stream_has_named_events_with_ids(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/chat/stream", json=CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "\r" not in response.text
    events = parse_events(response.text)
    assert [e.event for e in events] == ["token"] * 5 + ["usage", "done"]
    assert [e.id for e in events] == [str(i) for i in range(7)]
    tokens = [json.loads(e.data) for e in events[:5]]
    assert "".join(t["text"] for t in tokens) == "streams carry tokens streams carry"
    assert [t["index"] for t in tokens] == list(range(5))
    assert json.loads(events[5].data) == {
        "type": "usage",
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "total_tokens": 8,
    }
    assert json.loads(events[6].data) == {"type": "done", "finish_reason": "length"}


async def test_default_max_tokens_is_sixteen(client: httpx.AsyncClient) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    response = await client.post("/api/v1/chat/stream", json=body)
    events = parse_events(response.text)
    assert sum(1 for e in events if e.event == "token") == 16


async def test_invalid_request_is_a_json_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/chat/stream", json={"messages": []})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == "validation_error"
    assert "messages" in body["message"]


async def test_headers_arrive_before_the_first_token(live_server: Any) -> None:
    server = await live_server(fake_llm_first_token_delay_ms=1500)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:
        started = time.monotonic()
        async with http.stream("POST", "/api/v1/chat/stream", json=CHAT) as response:
            headers_after = time.monotonic() - started
            assert response.status_code == 200
            assert headers_after < 1.0
            events = [event async for event in iter_events(response)]
    assert events[0].event == "token"


async def test_idle_stream_gets_keepalive_comments(live_server: Any) -> None:
    server = await live_server(fake_llm_first_token_delay_ms=700, sse_keepalive_seconds=0.2)
    async with (
        httpx.AsyncClient(base_url=server.url, headers=server.headers) as http,
        http.stream("POST", "/api/v1/chat/stream", json=CHAT) as response,
    ):
        kinds = [event.event async for event in iter_events(response)]
    pings_before_first_token = kinds.index("token")
    assert pings_before_first_token >= 2
    assert set(kinds[:pings_before_first_token]) == {"comment"}


async def test_paced_tokens_arrive_one_by_one(live_server: Any) -> None:
    server = await live_server(fake_llm_delay_ms=50)
    arrivals: list[float] = []
    async with (
        httpx.AsyncClient(base_url=server.url, headers=server.headers) as http,
        http.stream("POST", "/api/v1/chat/stream", json=CHAT) as response,
    ):
        async for event in iter_events(response):
            if event.event == "token":
                arrivals.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) == 5
    assert min(gaps) > 0.03


async def test_many_streams_in_parallel(client: httpx.AsyncClient) -> None:
    async def one(i: int) -> list[str]:
        body = {"messages": [{"role": "user", "content": f"n{i}"}], "max_tokens": 3}
        response = await client.post("/api/v1/chat/stream", json=body)
        return [
            json.loads(e.data)["text"] for e in parse_events(response.text) if e.event == "token"
        ]

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [[f"n{i}", f" n{i}", f" n{i}"] for i in range(20)]
