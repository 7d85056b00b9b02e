"""At most MAX_CONCURRENT_STREAMS generations per caller, on every streaming transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from {{cookiecutter.package_name}}.ratelimit.base import Quota
from {{cookiecutter.package_name}}.ratelimit.policy import RateLimitPolicy, TooManyStreams
from {{cookiecutter.package_name}}.ratelimit.token_bucket import InMemoryRateLimiter

# isort: split
# Test helpers come after the package, whatever the package is named.
from stack_helpers import LONG_CHAT, assert_error_shape, http_client

OPENAI_LONG = {"model": "fake-echo-1", "stream": True, **LONG_CHAT}


async def open_sse(
    stack: AsyncExitStack, http: httpx.AsyncClient, path: str, body: Any
) -> AsyncIterator[bytes]:
    """Start a stream and read its first bytes, so it is surely running.

    The caller keeps the returned iterator: dropping it would close the connection.
    """
    response = await stack.enter_async_context(http.stream("POST", path, json=body))
    assert response.status_code == 200
    chunks = response.aiter_bytes()
    await anext(chunks)
    return chunks


async def post_expecting_refusal(http: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    """POST without reading an endless body if the request is wrongly let through."""
    async with http.stream("POST", path, json=body) as response:
        if response.status_code == 200:
            raise AssertionError(f"{path} was not refused")
        await response.aread()
    return response


async def held_becomes(server: Any, count: int, timeout: float = 3.0) -> None:
    # Each test has one caller (its address, or its credentials), so every slot is its own.
    streams = server.app.state.wiring.limiter.streams
    for _ in range(int(timeout / 0.01)):
        if streams.total == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{streams.total} slots held, expected {count}")


async def test_one_stream_too_many_is_refused_and_a_leaving_client_frees_its_slot(
    live_server: Any,
) -> None:
    server = await live_server(max_concurrent_streams=2, fake_llm_delay_ms=20)
    async with http_client(server.url, headers=server.headers) as http:
        first = AsyncExitStack()
        async with AsyncExitStack() as second:
            held = [
                await open_sse(first, http, "/api/v1/chat/stream", LONG_CHAT),
                await open_sse(second, http, "/api/v1/chat/completions", OPENAI_LONG),
            ]
            assert server.app.state.wiring.limiter.streams.total == 2
            refused = await post_expecting_refusal(http, "/api/v1/chat/stream", LONG_CHAT)
            body = assert_error_shape(refused, 429, "too_many_streams")
            assert "2 concurrent streams" in body["message"]
            assert int(refused.headers["retry-after"]) >= 1
            assert "ratelimit-policy" in refused.headers
            # Other routes are not streams and are not capped.
            assert (await http.get("/api/v1/models")).status_code == 200

            # The first client goes away mid-stream: its slot comes back.
            await first.aclose()
            await held_becomes(server, 1)
            async with AsyncExitStack() as third:
                held.append(await open_sse(third, http, "/api/v1/chat/stream", LONG_CHAT))
                assert server.app.state.wiring.limiter.streams.total == 2
    await held_becomes(server, 0)


async def test_finished_streams_give_their_slot_back(live_server: Any) -> None:
    server = await live_server(max_concurrent_streams=1)
    async with http_client(server.url, headers=server.headers) as http:
        for _ in range(3):
            response = await http.post("/api/v1/chat/stream", json={**LONG_CHAT, "max_tokens": 3})
            assert response.status_code == 200
    assert server.app.state.wiring.limiter.streams.total == 0


async def test_websockets_share_the_cap(live_server: Any) -> None:
    server = await live_server(max_concurrent_streams=1, fake_llm_delay_ms=20)
    url = f"{server.ws_url}/api/v1/chat/ws"
    async with http_client(server.url, headers=server.headers) as http:
        async with websockets.connect(url, additional_headers=server.headers, proxy=None):
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(url, additional_headers=server.headers, proxy=None):
                    pass
            assert refused.value.response.status_code == 429
            assert json.loads(refused.value.response.body or b"")["code"] == "too_many_streams"
            sse = await post_expecting_refusal(http, "/api/v1/chat/stream", LONG_CHAT)
            assert_error_shape(sse, 429, "too_many_streams")
        await held_becomes(server, 0)
        async with websockets.connect(url, additional_headers=server.headers, proxy=None) as ws:
            await ws.send(json.dumps({"type": "chat", **LONG_CHAT, "max_tokens": 2}))
            assert json.loads(await ws.recv())["type"] == "token"


async def test_policy_stream_context_for_other_transports() -> None:
    limiter = InMemoryRateLimiter(max_keys=100)
    policy = RateLimitPolicy(
        limiter,
        ip_quota=Quota.parse("10/minute"),
        user_quota=Quota.parse("10/minute"),
        max_streams=1,
    )
    caller = policy.caller(None, "192.0.2.1")
    async with policy.stream(caller) as lease:
        assert lease.key == "ip:192.0.2.1"
        with pytest.raises(TooManyStreams):
            async with policy.stream(caller):
                pass
        # Another caller has its own slots.
        async with policy.stream(policy.caller(None, "192.0.2.2")):
            pass
    assert limiter.streams.held("ip:192.0.2.1") == 0
    # Releasing twice is harmless and does not free someone else's slot.
    again = await policy.open_stream(caller)
    assert again is not None
    await policy.close_stream(lease)
    assert limiter.streams.held("ip:192.0.2.1") == 1
    await policy.close_stream(again)
    await policy.close_stream(again)
    assert limiter.streams.total == 0
