"""The concurrent-stream cap in Redis: shared by instances, freed on disconnect and on crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
from redis.exceptions import ConnectionError as RedisConnectionError

from {{cookiecutter.package_name}}.ratelimit.redis.limiter import RedisRateLimiter

# isort: split
# Test helpers come after the package, whatever the package is named.
from redis_helpers import (
    LimiterFactory,
    RedisServer,
    eventually,
    http_client,
    leases_in_redis,
    leases_of_a_crashed_worker,
)

LONG_CHAT = {"messages": [{"role": "user", "content": "a long answer"}], "max_tokens": 4000}


async def open_stream(stack: AsyncExitStack, http: httpx.AsyncClient) -> AsyncIterator[bytes]:
    """Start an endless SSE stream and read its first bytes; closing ``stack`` leaves it."""
    response = await stack.enter_async_context(
        http.stream("POST", "/api/v1/chat/stream", json=LONG_CHAT)
    )
    assert response.status_code == 200
    chunks = response.aiter_bytes()
    await anext(chunks)
    return chunks


async def refused_stream(http: httpx.AsyncClient) -> httpx.Response:
    async with http.stream("POST", "/api/v1/chat/stream", json=LONG_CHAT) as response:
        if response.status_code == 200:
            raise AssertionError("the stream was not refused")
        await response.aread()
    return response


async def test_the_cap_counts_streams_on_every_instance(
    live_server: Any, empty_redis: RedisServer
) -> None:
    first = await live_server(max_concurrent_streams=2, fake_llm_delay_ms=20)
    second = await live_server(max_concurrent_streams=2, fake_llm_delay_ms=20)
    async with (
        http_client(first.url, headers=first.headers) as to_first,
        http_client(second.url, headers=second.headers) as to_second,
    ):
        leaving = AsyncExitStack()
        async with AsyncExitStack() as staying:
            held = [await open_stream(leaving, to_first), await open_stream(staying, to_second)]
            assert leases_in_redis(empty_redis) == 2
            for http in (to_first, to_second):
                refused = await refused_stream(http)
                assert refused.status_code == 429
                assert refused.json()["code"] == "too_many_streams"

            # The client on the first instance goes away mid-stream: its slot comes back.
            await leaving.aclose()
            await eventually(lambda: leases_in_redis(empty_redis) == 1, timeout=5)
            async with AsyncExitStack() as third:
                held.append(await open_stream(third, to_second))
                assert leases_in_redis(empty_redis) == 2
    await eventually(lambda: leases_in_redis(empty_redis) == 0, timeout=5)


async def test_a_crashed_workers_leases_lapse_while_live_ones_are_refreshed(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    key, cap, ttl = "ip:192.0.2.60", 3, 1.0
    alive = await redis_limiter(lease_seconds=ttl)
    assert await alive.acquire_stream(key, cap) is not None
    await leases_of_a_crashed_worker(empty_redis.url, key, 2, cap, ttl)

    other = await redis_limiter(lease_seconds=ttl)
    assert leases_in_redis(empty_redis) == cap
    assert await other.acquire_stream(key, cap) is None

    # Past the TTL the dead worker's leases have lapsed; the live one was refreshed.
    await asyncio.sleep(ttl * 1.5)
    assert await other.acquire_stream(key, cap) is not None
    assert await other.acquire_stream(key, cap) is not None
    assert await other.acquire_stream(key, cap) is None
    assert alive.streams.held(key) == 1
    assert other.streams.held(key) == 2


class CancellationToError(RedisRateLimiter):
    """A refresh that answers its cancellation with a Redis error, as a client can."""

    syncing = asyncio.Event()
    converted = 0

    async def _sync(self) -> None:
        self.syncing.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            # Only once, so that a regression fails this test rather than hang it.
            if self.converted:
                raise
            self.converted += 1
            raise RedisConnectionError("connection closed while cancelling") from None


async def test_stopping_ends_a_refresher_whose_cancellation_became_an_error(
    empty_redis: RedisServer,
) -> None:
    limiter = CancellationToError(empty_redis.url, timeout=2.0, lease_seconds=0.03)
    await limiter.start(None)
    refresher = limiter._refresher
    assert refresher is not None
    await asyncio.wait_for(limiter.syncing.wait(), 5)
    started = asyncio.get_running_loop().time()
    await limiter.stop(None)
    # Without the stop flag the loop would take the error as a failed refresh and go on.
    done = refresher.done()
    if not done:
        refresher.cancel()
    assert done
    assert limiter.converted == 1
    assert asyncio.get_running_loop().time() - started < 1.0
