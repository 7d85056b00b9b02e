"""A client that leaves stops its generation within 100 ms, on every HTTP transport."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import websockets

from sse_client import iter_events

LONG = {"messages": [{"role": "user", "content": "a long answer"}], "max_tokens": 4000}
OPENAI_LONG = {"model": "fake-echo-1", "stream": True, **LONG}


async def wait_until_idle(server: Any, timeout: float = 2.0) -> float:
    """Seconds until no generation runs on the server."""
    started = time.monotonic()
    provider = server.app.state.wiring.core.provider
    while provider.active or server.app.state.wiring.core.active:
        if time.monotonic() - started > timeout:
            raise AssertionError("the generation kept running after the client left")
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def wait_for_generation(server: Any) -> None:
    for _ in range(500):
        if server.app.state.wiring.core.provider.active:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no generation started")


async def settle_tasks(baseline: int, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while len(asyncio.all_tasks()) > baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return len(asyncio.all_tasks())


@pytest.mark.parametrize(
    ("path", "body"), [("/api/v1/chat/stream", LONG), ("/api/v1/chat/completions", OPENAI_LONG)]
)
async def test_disconnect_mid_stream_stops_generation(
    live_server: Any, path: str, body: Any
) -> None:
    server = await live_server(fake_llm_delay_ms=10)
    baseline = len(asyncio.all_tasks())
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:
        async with http.stream("POST", path, json=body) as response:
            seen = 0
            async for _ in iter_events(response):
                seen += 1
                if seen == 5:
                    break
        left_at = time.monotonic()
        assert server.app.state.wiring.core.provider.started == 1
    elapsed = await wait_until_idle(server) + (time.monotonic() - left_at) * 0
    assert elapsed < 0.1, f"generation stopped {elapsed * 1000:.0f} ms after the client left"
    assert await settle_tasks(baseline) <= baseline


@pytest.mark.parametrize(
    ("path", "body"), [("/api/v1/chat/stream", LONG), ("/api/v1/chat/completions", OPENAI_LONG)]
)
async def test_disconnect_before_first_token_stops_generation(
    live_server: Any, path: str, body: Any
) -> None:
    server = await live_server(fake_llm_first_token_delay_ms=10_000)
    baseline = len(asyncio.all_tasks())
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:

        async def request() -> None:
            async with http.stream("POST", path, json=body) as response:
                async for _ in response.aiter_bytes():
                    pass

        task = asyncio.create_task(request())
        await wait_for_generation(server)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    elapsed = await wait_until_idle(server)
    assert elapsed < 0.1, f"generation stopped {elapsed * 1000:.0f} ms after the client left"
    assert await settle_tasks(baseline) <= baseline


async def test_websocket_disconnect_stops_generation(live_server: Any) -> None:
    server = await live_server(fake_llm_delay_ms=10)
    baseline = len(asyncio.all_tasks())
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send(
            '{"type": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000}'
        )
        for _ in range(3):
            await ws.recv()
    elapsed = await wait_until_idle(server)
    assert elapsed < 0.1, f"generation stopped {elapsed * 1000:.0f} ms after the client left"
    assert await settle_tasks(baseline) <= baseline


async def test_websocket_disconnect_before_first_token(live_server: Any) -> None:
    server = await live_server(fake_llm_first_token_delay_ms=10_000)
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send('{"type": "chat", "messages": [{"role": "user", "content": "hi"}]}')
        await wait_for_generation(server)
    elapsed = await wait_until_idle(server)
    assert elapsed < 0.1


async def test_unpaced_stream_is_cancelled_when_the_client_leaves(live_server: Any) -> None:
    server = await live_server(fake_llm_delay_ms=0, max_tokens_limit=32_768)
    body = {"messages": [{"role": "user", "content": "x " * 500}], "max_tokens": 32_768}
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("POST", "/api/v1/chat/stream", json=body, headers=server.headers) as response,
    ):
        async for _ in response.aiter_bytes():
            break
    await wait_until_idle(server)
    metrics = server.app.state.wiring.metrics.render()[0].decode()
    assert 'generations_total{finish_reason="cancelled",transport="sse"} 1.0' in metrics
