"""The sliding window counter in a real Redis: exact, atomic, bounded at boundaries, one trip."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from {{cookiecutter.package_name}}.ratelimit.base import Quota
from {{cookiecutter.package_name}}.ratelimit.redis.keys import caller_prefix

# isort: split
# Test helpers come after the package, whatever the package is named.
from redis_helpers import (
    LimiterFactory,
    RedisServer,
    at_window_offset,
    client_commands,
    command_calls,
    redis_now_ms,
    reset_command_stats,
)


def window_keys(server: RedisServer, caller: str) -> dict[str, int]:
    """The caller's counter keys with their remaining time to live, in ms."""
    with server.client() as client:
        names = [name.decode() for name in client.keys(caller_prefix(caller) + ":*")]
        return {name: int(client.pttl(name)) for name in names}


async def test_exactly_the_limit_then_refusals_that_say_when(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    limiter = await redis_limiter()
    quota = Quota.parse("5/hour")
    await at_window_offset(empty_redis, 3_600_000, 0, 3_590_000)
    decisions = [await limiter.hit("ip:192.0.2.1", quota) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert all(d.limit == 5 for d in decisions)
    refused = decisions[-1]
    # The next unit comes back once a fifth of the next window has passed.
    assert 3600 * 0.2 < refused.retry_after <= 3600 * 1.2
    assert refused.retry_after <= refused.reset_after <= 2 * 3600
    # Callers and quotas do not share counters.
    assert (await limiter.hit("ip:192.0.2.2", quota)).remaining == 4


async def test_concurrent_decisions_are_atomic(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    limiter = await redis_limiter()
    quota = Quota.parse("25/hour")
    await at_window_offset(empty_redis, 3_600_000, 0, 3_590_000)
    decisions = await asyncio.gather(*(limiter.hit("same", quota) for _ in range(300)))
    assert sum(d.allowed for d in decisions) == 25
    assert limiter.circuit.fallbacks == 0


async def test_a_burst_after_a_boundary_stays_within_the_stated_bound(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    """A fixed window would allow the full limit again right after the boundary.

    The sliding window counter allows ``floor(L * f)`` more, where ``f`` is how much
    of the new window has passed: the last W seconds hold at most ``L * (1 + f)``.
    """
    limiter = await redis_limiter()
    limit, window_ms = 10, 2000
    quota = Quota.parse(f"{limit} per 2 seconds")

    # The two bursts must land in adjacent windows; a stalled machine gets another go.
    for attempt in range(3):
        caller = f"ip:198.51.100.{attempt}"
        # Late in one window, a burst takes the whole limit.
        await at_window_offset(empty_redis, window_ms, 1400, 1700)
        first_window = redis_now_ms(empty_redis) // window_ms
        first = await asyncio.gather(*(limiter.hit(caller, quota) for _ in range(limit + 3)))
        assert sum(d.allowed for d in first) == limit
        # Counters live until the end of the next window, when they stop mattering.
        ttls = window_keys(empty_redis, caller)
        assert len(ttls) == 1
        assert all(0 < ttl <= 2 * window_ms for ttl in ttls.values())

        # Early in the next one, another burst gets only what has slid out.
        await at_window_offset(empty_redis, window_ms, 250, 450)
        before_ms = redis_now_ms(empty_redis)
        second = await asyncio.gather(*(limiter.hit(caller, quota) for _ in range(limit)))
        after_ms = redis_now_ms(empty_redis)
        if before_ms // window_ms == after_ms // window_ms == first_window + 1:
            break
    else:
        raise AssertionError("could not place two bursts in adjacent windows")
    before = before_ms % window_ms / window_ms
    after = after_ms % window_ms / window_ms
    allowed = sum(d.allowed for d in second)
    assert math.floor(limit * before) <= allowed <= math.floor(limit * after)
    assert limit + allowed <= limit * (1 + after)
    assert 1 <= allowed < limit // 2
    # The previous window's counter now lives only until the end of this window.
    ttls = window_keys(empty_redis, caller)
    assert len(ttls) == 2
    previous, current = sorted(ttls.items())
    assert 0 < previous[1] <= window_ms < current[1] <= 2 * window_ms

    # A refusal's Retry-After is when the next unit really comes back.
    refused = next(d for d in second if not d.allowed)
    assert 0 < refused.retry_after <= window_ms / 1000
    probe = await limiter.hit(caller, quota)
    if not probe.allowed:
        await asyncio.sleep(probe.retry_after + 0.05)
        assert (await limiter.hit(caller, quota)).allowed


async def test_one_decision_is_one_evalsha(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    limiter = await redis_limiter()
    quota = Quota.parse("100/hour")
    async with client_commands(empty_redis) as sent:
        await limiter.hit("ip:203.0.113.1", quota)
    assert [command.split()[0] for command in sent] == ["EVALSHA"]

    async with client_commands(empty_redis) as sent:
        lease = await limiter.acquire_stream("ip:203.0.113.1", 3)
        assert lease is not None
        await limiter.release_stream(lease)
    assert [command.split()[0] for command in sent] == ["EVALSHA", "ZREM"]
    # INFO commandstats agrees (it also counts what the script runs inside Redis).
    reset_command_stats(empty_redis)
    await limiter.hit("ip:203.0.113.1", quota)
    assert command_calls(empty_redis)["evalsha"] == 1


async def test_concurrent_decisions_share_round_trips_and_stay_exact(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    limiter = await redis_limiter()
    window = limiter._window
    assert window is not None
    batches: list[int] = []
    send_batch = window._send_batch

    async def counting(batch: Any) -> Any:
        batches.append(len(batch))
        return await send_batch(batch)

    window._send_batch = counting
    quota = Quota.parse("20/hour")
    await at_window_offset(empty_redis, 3_600_000, 0, 3_590_000)
    reset_command_stats(empty_redis)
    decisions = await asyncio.gather(*(limiter.hit("ip:203.0.113.77", quota) for _ in range(50)))
    assert sum(decision.allowed for decision in decisions) == 20
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))
    # Every decision is its own EVALSHA, but they travel together.
    assert command_calls(empty_redis)["evalsha"] == 50
    assert sum(batches) == 50
    assert len(batches) < 50


async def test_noscript_after_script_flush_reloads_and_decides(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    limiter = await redis_limiter()
    quota = Quota.parse("10/hour")
    await at_window_offset(empty_redis, 3_600_000, 0, 3_590_000)
    assert (await limiter.hit("ip:203.0.113.9", quota)).remaining == 9
    with empty_redis.client() as client:
        client.script_flush()
    reset_command_stats(empty_redis)

    decision = await limiter.hit("ip:203.0.113.9", quota)
    assert decision.allowed
    assert decision.remaining == 8
    calls = command_calls(empty_redis)
    # The NOSCRIPT reply, the reload, and the retried call; no fallback.
    assert calls["evalsha"] == 2
    assert calls["script|load"] == 1
    assert limiter.circuit.fallbacks == 0
    assert limiter.circuit.up
    # Loaded again: the next decision is one call.
    reset_command_stats(empty_redis)
    assert (await limiter.hit("ip:203.0.113.9", quota)).remaining == 7
    assert command_calls(empty_redis)["evalsha"] == 1


async def test_keys_are_namespaced_versioned_and_hash_tagged(
    redis_limiter: LimiterFactory, empty_redis: RedisServer
) -> None:
    limiter = await redis_limiter()
    # A caller key built from a token's subject may hold braces: they must not end the tag.
    await limiter.hit("user:a}b{c", Quota.parse("10/minute"))
    await limiter.acquire_stream("user:a}b{c", 2)
    with empty_redis.client() as client:
        names = sorted(name.decode() for name in client.keys("*"))
        start = int(names[0].rsplit(":", 1)[1])
        stream_ttl = int(client.pttl(names[1]))
    assert names == ["rl:v1:{user:a%7Db%7Bc}:" + str(start), "rl:v1:{user:a%7Db%7Bc}:streams"]
    assert start % 60_000 == 0
    assert 0 < stream_ttl <= 300_000
