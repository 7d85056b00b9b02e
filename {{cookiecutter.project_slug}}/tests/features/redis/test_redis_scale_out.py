"""Two instances of the service on one Redis, as behind a load balancer.

Each instance is its own ``python -m`` process on its own port. The client
alternates between them: the request limit and the concurrent-stream cap are
counted once for both, and an instance killed mid-stream leaves the other
serving, its stream slots coming back when their leases lapse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import AUTH_HEADERS, TEST_DEFAULTS
from redis_helpers import (
    RedisServer,
    ServiceProcess,
    at_window_offset,
    eventually,
    http_client,
    leases_in_redis,
    service_process,
)
from sse_client import Event, iter_events

LONG_CHAT = {"messages": [{"role": "user", "content": "a long answer"}], "max_tokens": 4000}
STREAM = "/api/v1/chat/stream"
LEASE_SECONDS = 3


@asynccontextmanager
async def two_instances(
    tmp_path: Path, redis: RedisServer, **settings: str
) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess]]:
    # The in-process tests' settings (credentials included, where the project
    # requires them), through the environment each instance reads.
    env = {name.upper(): str(value) for name, value in TEST_DEFAULTS.items()}
    env.update(REDIS_URL=redis.url, **settings)
    async with AsyncExitStack() as stack:
        first, second = await asyncio.gather(
            stack.enter_async_context(service_process(tmp_path / "first.log", 1, **env)),
            stack.enter_async_context(service_process(tmp_path / "second.log", 1, **env)),
        )
        yield first, second
    for name in ("first.log", "second.log"):
        # Every decision was Redis': neither instance fell back to a local limit.
        assert "ratelimit.redis_down" not in (tmp_path / name).read_text()


@asynccontextmanager
async def streaming(http: httpx.AsyncClient) -> AsyncIterator[AsyncIterator[Event]]:
    """A long SSE stream, its first token already read."""
    async with http.stream("POST", STREAM, json=LONG_CHAT) as response:
        assert response.status_code == 200, await response.aread()
        events = iter_events(response)
        assert (await anext(events)).event == "token"
        yield events


async def refused(http: httpx.AsyncClient) -> str:
    async with http.stream("POST", STREAM, json=LONG_CHAT) as response:
        body = await response.aread()
    assert response.status_code == 429, body
    code: str = response.json()["code"]
    return code


async def test_the_request_limit_is_counted_once_for_both_instances(
    tmp_path: Path, empty_redis: RedisServer
) -> None:
    limit = 30
    async with two_instances(
        tmp_path, empty_redis, RATE_LIMIT_IP=f"{limit}/minute", RATE_LIMIT_USER=f"{limit}/minute"
    ) as instances:
        # 90 requests take well under a second: keep them inside one minute's window.
        await at_window_offset(empty_redis, 60_000, 0, 50_000)
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    http_client(instance.url, headers=AUTH_HEADERS, timeout=10)
                )
                for instance in instances
            ]
            statuses: list[list[int]] = [[], []]
            for turn in range(90):
                response = await clients[turn % 2].get("/api/v1/models")
                statuses[turn % 2].append(response.status_code)
    # Alternating, each instance served half of the one limit and then refused:
    # two instances with limits of their own would have served 30 each.
    for seen in statuses:
        assert seen == [200] * (limit // 2) + [429] * (45 - limit // 2), seen


async def test_the_stream_cap_holds_across_instances_and_survives_one_dying(
    tmp_path: Path, empty_redis: RedisServer
) -> None:
    async with (
        two_instances(
            tmp_path,
            empty_redis,
            MAX_CONCURRENT_STREAMS="2",
            RATE_LIMIT_STREAM_LEASE_SECONDS=str(LEASE_SECONDS),
            FAKE_LLM_DELAY_MS="20",
        ) as (doomed, survivor),
        http_client(doomed.url, headers=AUTH_HEADERS, timeout=10) as to_doomed,
        http_client(survivor.url, headers=AUTH_HEADERS, timeout=10) as to_survivor,
        streaming(to_doomed) as on_doomed,
        streaming(to_survivor) as on_survivor,
    ):
        assert leases_in_redis(empty_redis) == 2
        # One stream on each instance: the caller's cap of 2 is reached on both.
        assert await refused(to_doomed) == "too_many_streams"
        assert await refused(to_survivor) == "too_many_streams"

        doomed.kill()
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            async for _ in on_doomed:
                pass

        # The survivor's stream goes on, and it answers new requests.
        tokens = [event async for event in first_tokens(on_survivor, 10)]
        assert len(tokens) == 10
        assert (await to_survivor.get("/api/v1/models")).status_code == 200

        # The dead instance never gave its slot back: its lease lapses instead.
        await eventually(
            lambda: leases_in_redis(empty_redis, live=True) == 1, timeout=LEASE_SECONDS + 5
        )
        async with streaming(to_survivor):
            assert leases_in_redis(empty_redis) == 2


async def first_tokens(events: AsyncIterator[Event], count: int) -> AsyncIterator[Event]:
    async for event in events:
        if event.event == "token":
            yield event
            count -= 1
            if count == 0:
                return
