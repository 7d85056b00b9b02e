"""The in-memory backend: token buckets in a bounded LRU store.

Each key has a bucket of ``quota.limit`` tokens that refills continuously at
``limit / window`` per second, so bursts up to the limit are allowed and the
long-run rate never exceeds it, without the double burst a fixed window allows
at its edges.

Atomicity: ``hit`` reads, updates and writes a bucket without awaiting, so no
other coroutine can interleave; one process needs no lock. It does not share
state across workers or instances: that is what a shared backend is for.

Memory: at most ``max_keys`` buckets are kept. The least recently used bucket is
evicted first; a housekeeping task also drops buckets that have refilled
completely, since a full bucket is the same as no bucket at all.

Why not the ``limits`` package's limiters (its parser is used for the limit
strings): its strategies are fixed, moving and sliding windows, not a token
bucket, and its in-memory storage sets no bound on the number of keys.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..background import stop_task
from .base import Decision, Lease, Quota
from .streams import StreamSlots

SWEEP_INTERVAL = 10.0
SWEEP_BUDGET = 10_000


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float
    full_at: float


class TokenBucketStore:
    """Synchronous and loop-agnostic, so that it is easy to test and reason about."""

    def __init__(self, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        now = self._clock()
        capacity = quota.limit
        rate = quota.rate
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            tokens = float(capacity)
        else:
            tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            buckets.move_to_end(key)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
            retry_after = 0.0
        else:
            retry_after = (cost - tokens) / rate
        reset_after = (capacity - tokens) / rate
        if bucket is None:
            buckets[key] = Bucket(tokens, now, now + reset_after)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        else:
            bucket.tokens = tokens
            bucket.updated = now
            bucket.full_at = now + reset_after
        return Decision(
            allowed=allowed,
            limit=capacity,
            remaining=math.floor(tokens),
            reset_after=reset_after,
            retry_after=retry_after,
        )

    def sweep(self, budget: int = SWEEP_BUDGET) -> int:
        """Drop full buckets, oldest first; look at no more than ``budget`` of them.

        Stops at the first bucket still refilling: newer ones were used later and
        are unlikely to be full, and a bounded pass never stalls the event loop.
        """
        now = self._clock()
        buckets = self._buckets
        dropped = 0
        for _ in range(min(budget, len(buckets))):
            key, bucket = next(iter(buckets.items()))
            if bucket.full_at > now:
                break
            del buckets[key]
            dropped += 1
        return dropped


class InMemoryRateLimiter:
    """``RateLimiter`` for one process: token buckets plus in-process stream slots."""

    def __init__(
        self,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.buckets = TokenBucketStore(max_keys, clock)
        self.streams = StreamSlots()
        self.sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, app: object) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="rate-limit-sweeper")

    async def stop(self, app: object) -> None:
        task, self._sweeper = self._sweeper, None
        await stop_task(task)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.buckets.sweep()

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        return self.buckets.take(key, quota, cost)

    async def acquire_stream(self, key: str, max_streams: int) -> Lease | None:
        return self.streams.acquire(key, max_streams)

    async def release_stream(self, lease: Lease) -> None:
        self.streams.release(lease)
