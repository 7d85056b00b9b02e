"""Redis going away: never a 500 or a hang; the failure mode decides; limiting resumes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from {{cookiecutter.package_name}}.ratelimit.base import Quota, RateLimiterUnavailable
from {{cookiecutter.package_name}}.ratelimit.redis.keys import streams_key

# isort: split
# Test helpers come after the package, whatever the package is named.
from redis_helpers import (
    LimiterFactory,
    RedisServer,
    eventually,
    free_port,
    http_client,
    metric,
)
from stack_helpers import assert_error_shape

LIMIT = 5
# A decision may wait this long for Redis; the bound asserted is generous for loaded machines.
TIMEOUT_MS = 100
LATENCY_BOUND = 1.0


@dataclass(frozen=True)
class Result:
    sent_at: float
    status: int
    seconds: float

    @property
    def ended(self) -> float:
        return self.sent_at + self.seconds


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
async def test_killing_redis_under_load(
    mode: str, live_server: Any, redis_server: RedisServer
) -> None:
    server = await live_server(
        redis_url=redis_server.url,
        redis_timeout_ms=TIMEOUT_MS,
        rate_limit_failure_mode=mode,
        rate_limit_ip=f"{LIMIT}/minute",
        rate_limit_user=f"{LIMIT}/minute",
    )
    results: list[Result] = []
    running = True

    async with http_client(server.url, headers=server.headers, timeout=10) as http:

        async def load() -> None:
            while running:
                started = time.monotonic()
                response = await http.get("/api/v1/models")
                results.append(Result(started, response.status_code, time.monotonic() - started))
                await asyncio.sleep(0.01)

        async def metrics() -> str:
            return (await http.get("/metrics")).text

        # Spend the caller's quota in Redis first: from then on Redis answers 429, so
        # every 200 while it is down comes from the failure mode.
        spent = [(await http.get("/api/v1/models")).status_code for _ in range(LIMIT + 1)]
        assert spent == [200] * LIMIT + [429]
        loaders = [asyncio.create_task(load()) for _ in range(4)]
        try:
            await asyncio.sleep(0.2)
            redis_server.kill()
            killed_at = time.monotonic()
            await eventually(
                lambda: sum(r.sent_at > killed_at for r in results) > 2 * LIMIT, timeout=10
            )
            ready = await http.get("/readyz")
            during = await metrics()
            redis_server.start()  # the same port, empty, as after a crash
            restarted_at = time.monotonic()
            # Sent after Redis died and before it came back: decided without it.
            outage = [r for r in results if killed_at < r.sent_at < restarted_at]
            # Those in flight when it died too.
            answered = [r for r in results if r.sent_at < restarted_at and r.ended > killed_at]

            async def recovered() -> bool:
                return metric(await metrics(), "ratelimit_redis_up") == 1.0

            await eventually(recovered, timeout=10)
        finally:
            running = False
            await asyncio.gather(*loaders)

        # Shared limiting resumes: counts start again from Redis (empty after its restart).
        with redis_server.client() as client:
            client.flushall()
        after = [await http.get("/api/v1/models") for _ in range(3)]

    statuses = {r.status for r in results}
    assert outage, "no request was sent while Redis was down"
    # Each decision waited at most about the socket timeout, never hung.
    assert max(r.seconds for r in results) < LATENCY_BOUND
    assert metric(during, "ratelimit_redis_up") == 0.0
    fallbacks = metric(during, "ratelimit_redis_fallbacks_total", mode=mode, operation="hit")
    assert fallbacks is not None and fallbacks > 0
    outage_statuses = {r.status for r in outage}
    if mode == "local":
        assert statuses <= {200, 429}
        # Redis had refused everything by then; this process's own bucket allows LIMIT more.
        assert 429 in outage_statuses
        assert [r.status for r in answered].count(200) == LIMIT
        assert ready.status_code == 200
    elif mode == "open":
        assert statuses <= {200, 429}
        assert outage_statuses == {200}
        assert ready.status_code == 200
    else:
        assert statuses <= {200, 429, 503}
        assert outage_statuses == {503}
        assert ready.status_code == 503
        assert "redis" in ready.json()["message"]
    assert [response.status_code for response in after] == [200, 200, 200]
    remaining = [
        response.headers["ratelimit"].rsplit("r=", 1)[1].split(";")[0] for response in after
    ]
    assert remaining == [str(LIMIT - 1), str(LIMIT - 2), str(LIMIT - 3)]


async def test_closed_mode_answers_503_with_the_error_shape(
    live_server: Any, redis_server: RedisServer
) -> None:
    server = await live_server(
        redis_url=redis_server.url, redis_timeout_ms=TIMEOUT_MS, rate_limit_failure_mode="closed"
    )
    redis_server.kill()
    async with http_client(server.url, headers=server.headers, timeout=10) as http:
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        for method, path, body in (
            ("GET", "/api/v1/models", None),
            ("POST", "/api/v1/chat/stream", chat),
        ):
            started = time.monotonic()
            response = await http.request(method, path, json=body)
            assert time.monotonic() - started < LATENCY_BOUND
            # Each in its API's error shape, the request ID included.
            assert_error_shape(response, 503, "rate_limiter_unavailable")
            assert int(response.headers["retry-after"]) >= 1
        # Outside the API nothing is limited, so nothing is refused.
        assert (await http.get("/healthz")).status_code == 200


async def test_a_hung_redis_costs_a_few_timeouts_then_nothing(
    redis_limiter: LimiterFactory, redis_server: RedisServer
) -> None:
    limiter = await redis_limiter(redis_server.url, timeout=TIMEOUT_MS / 1000)
    quota = Quota.parse(f"{LIMIT}/minute")
    held = await limiter.acquire_stream("ip:192.0.2.7", 2)
    assert held is not None
    assert (await limiter.hit("ip:192.0.2.7", quota)).allowed
    redis_server.pause()
    try:
        timings = []
        for _ in range(8):
            started = time.monotonic()
            await limiter.hit("ip:192.0.2.7", quota)
            timings.append(time.monotonic() - started)
        # The first few wait for the timeout; then the circuit is open and none waits.
        assert not limiter.circuit.up
        assert max(timings) < LATENCY_BOUND
        assert max(timings[limiter.circuit.threshold :]) < TIMEOUT_MS / 1000
        # Stream slots come from this process while Redis is away...
        local = await limiter.acquire_stream("ip:192.0.2.7", 2)
        assert local is not None
        assert limiter.streams.held("ip:192.0.2.7") == 2
        await limiter.release_stream(local)
        # ...and a Redis lease released now is given back once Redis answers again.
        await limiter.release_stream(held)
        assert limiter.streams.held("ip:192.0.2.7") == 0
    finally:
        redis_server.resume()

    def lease_gone() -> bool:
        with redis_server.client() as client:
            return int(client.zcard(streams_key("ip:192.0.2.7"))) == 0

    await eventually(lambda: limiter.circuit.up, timeout=10)
    await eventually(lease_gone, timeout=5)
    assert (await limiter.hit("ip:192.0.2.7", quota)).allowed


async def test_starts_without_redis_and_catches_up(redis_limiter: LimiterFactory) -> None:
    server = RedisServer(free_port())
    limiter = await redis_limiter(server.url, timeout=TIMEOUT_MS / 1000, failure_mode="closed")
    assert not limiter.circuit.up
    with pytest.raises(RateLimiterUnavailable) as refused:
        await limiter.hit("ip:192.0.2.8", Quota.parse("5/minute"))
    assert 1 <= refused.value.retry_after_seconds <= 2
    with pytest.raises(RateLimiterUnavailable):
        await limiter.acquire_stream("ip:192.0.2.8", 1)
    assert not await limiter.ready()
    server.start()
    try:
        await eventually(lambda: limiter.circuit.up, timeout=10)
        assert await limiter.ready()
        assert (await limiter.hit("ip:192.0.2.8", Quota.parse("5/minute"))).remaining == 4
    finally:
        server.stop()
