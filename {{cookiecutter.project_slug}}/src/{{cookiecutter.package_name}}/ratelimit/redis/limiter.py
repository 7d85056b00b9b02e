"""``RateLimiter`` backed by Redis: one set of limits for every worker and instance.

Request limits are a sliding window counter (``window``), stream caps are
leases in a sorted set (``streams``). One connection pool per process is
opened by ``start`` (the lifespan) and closed by ``stop``. Every call is bounded
by the socket timeout (``REDIS_TIMEOUT_MS``) and never retried: a decision waits
for Redis at most that long, then gets the failure mode's answer.

The pool is bounded (``REDIS_MAX_CONNECTIONS``) and opened in full at start-up.
Opening a connection costs a few milliseconds of this process's time, so a burst
on a cold pool of one connection per request would spend the timeout
connecting; callers beyond the bound wait for a free connection instead, still
within the timeout. A pool that cannot keep up then counts as Redis failing.
Request-rate decisions do not use the pool: they travel in batches on one
connection of their own (``window``), opened by the first decision.

Failure modes (``RATE_LIMIT_FAILURE_MODE``), used while Redis is unreachable:

* ``local`` (default): the in-memory token buckets and stream slots of this
  process decide, so limits still hold, per process (N workers: up to N times).
* ``open``: everything is allowed.
* ``closed``: everything is refused with ``RateLimiterUnavailable`` (HTTP 503).

After a few failures in a row the circuit opens (``circuit``): requests
skip Redis without waiting while a background task probes it with back-off
(1 s doubling to 30 s). Each fallback decision is counted in
``ratelimit_redis_fallbacks_total``; ``ratelimit_redis_up`` shows the state, and
the outage and the recovery are logged once each.

Readiness: only the ``closed`` mode registers a ``redis`` readiness check, since
only there does losing Redis stop this instance from serving. In ``local`` and
``open`` modes the instance still serves, and every instance shares the same
Redis: failing readiness would take them all out of the load balancer at once,
turning a degraded limiter into a full outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from typing import Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ...background import stop_task
from ..base import Decision, Lease, Quota, RateLimiterUnavailable
from ..token_bucket import InMemoryRateLimiter
from .circuit import Circuit
from .metrics import RedisLimiterMetrics
from .streams import HeldLeases, RedisStreamLeases
from .window import SlidingWindow

FailureMode = Literal["local", "open", "closed"]

# What "Redis is unreachable" looks like: refused or reset connections, socket
# and overall timeouts, and error replies (LOADING, READONLY, OOM...).
REDIS_FAILURES = (RedisError, OSError, TimeoutError)

REDIS = "redis"
# Releases that could not reach Redis, retried by the refresher; past this many
# the oldest are left to lapse by their TTL.
MAX_UNRELEASED = 10_000


class RedisRateLimiter:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.1,
        max_connections: int = 32,
        failure_mode: FailureMode = "local",
        lease_seconds: float = 300.0,
        fallback: InMemoryRateLimiter | None = None,
        metrics: RedisLimiterMetrics | None = None,
        background_timeout: float = 1.0,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_connections = max_connections
        self.failure_mode: FailureMode = failure_mode
        self.lease_seconds = lease_seconds
        self.fallback = fallback if fallback is not None else InMemoryRateLimiter(100_000)
        self.metrics = metrics
        # Probes, refreshes and start-up have no request waiting on them.
        self.background_timeout = max(background_timeout, timeout)
        self.streams = HeldLeases()
        self.circuit = Circuit(
            self._probe,
            first_delay=first_backoff,
            max_delay=max_backoff,
            on_change=self._on_state_change,
        )
        self.client: Redis | None = None
        self._pool: BlockingConnectionPool | None = None
        self._window: SlidingWindow | None = None
        self._leases: RedisStreamLeases | None = None
        self._unreleased: deque[Lease] = deque(maxlen=MAX_UNRELEASED)
        self._wake = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifespan ------------------------------------------------------------

    async def start(self, app: object) -> None:
        await self.fallback.start(app)
        if self.client is not None:
            return
        self._pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.timeout,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # No retries: a retry would hide a dead Redis behind several timeouts.
            retry=Retry(NoBackoff(), 0),
        )
        self.client = client = Redis(connection_pool=self._pool)
        self._window = SlidingWindow(client, self.timeout)
        self._leases = RedisStreamLeases(client, self.lease_seconds)
        try:
            await self._probe()
        except REDIS_FAILURES as exc:
            # Start anyway: the failure mode decides until Redis is back.
            self.circuit.trip(exc)
        else:
            self._on_state_change(True)
        self._refresher = asyncio.create_task(self._refresh_forever(), name="redis-lease-refresh")

    async def stop(self, app: object) -> None:
        self._stopping = True
        task, self._refresher = self._refresher, None
        await stop_task(task)
        await self.circuit.close()
        # Streams still open now give their slots back at once rather than after the TTL.
        self._unreleased.extend(self.streams.pop_all(REDIS))
        if self.circuit.up and self._unreleased:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._sync()
        client, self.client = self.client, None
        pool, self._pool = self._pool, None
        window, self._window = self._window, None
        self._leases = None
        if window is not None:
            await window.close()
        if client is not None:
            await client.aclose()
        if pool is not None:
            await pool.disconnect()
        await self.fallback.stop(app)

    # --- request rate --------------------------------------------------------

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        window = self._window
        if window is not None and self.circuit.up:
            try:
                async with asyncio.timeout(self.timeout):
                    decision = await window.hit(key, quota, cost)
            except REDIS_FAILURES as exc:
                self.circuit.failed(exc)
            else:
                self.circuit.succeeded()
                return decision
        self._count_fallback("hit")
        if self.failure_mode == "local":
            return await self.fallback.hit(key, quota, cost)
        if self.failure_mode == "open":
            return Decision(True, quota.limit, max(0, quota.limit - cost), 0.0, 0.0)
        raise RateLimiterUnavailable(self.circuit.retry_after)

    # --- concurrent streams --------------------------------------------------

    async def acquire_stream(self, key: str, max_streams: int) -> Lease | None:
        leases = self._leases
        if leases is not None and self.circuit.up:
            token = uuid.uuid4().hex
            try:
                async with asyncio.timeout(self.timeout):
                    lease = await leases.acquire(key, max_streams, token)
            except REDIS_FAILURES as exc:
                self.circuit.failed(exc)
                # The script may have run before the reply was lost: do not leak the slot.
                self._unreleased.append(Lease(key, token))
            else:
                self.circuit.succeeded()
                if lease is not None:
                    self.streams.add(lease, REDIS)
                return lease
        self._count_fallback("stream")
        if self.failure_mode == "local":
            lease = await self.fallback.acquire_stream(key, max_streams)
            if lease is not None:
                self.streams.add(lease, "local")
            return lease
        if self.failure_mode == "open":
            lease = Lease(key, "open-" + uuid.uuid4().hex)
            self.streams.add(lease, "open")
            return lease
        raise RateLimiterUnavailable(self.circuit.retry_after)

    async def release_stream(self, lease: Lease) -> None:
        origin = self.streams.pop(lease)
        if origin == "local":
            await self.fallback.release_stream(lease)
        if origin != REDIS:
            return
        leases = self._leases
        if leases is not None and self.circuit.up:
            try:
                async with asyncio.timeout(self.timeout):
                    await leases.release(lease)
            except REDIS_FAILURES as exc:
                self.circuit.failed(exc)
            else:
                self.circuit.succeeded()
                return
        self._unreleased.append(lease)

    # --- health --------------------------------------------------------------

    async def ready(self) -> bool:
        """Redis answers now (the ``closed`` mode's readiness check)."""
        client = self.client
        if client is None or not self.circuit.up:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await client.ping()
        except REDIS_FAILURES as exc:
            self.circuit.failed(exc)
            return False
        return True

    # --- housekeeping ----------------------------------------------------------

    async def _probe(self) -> None:
        """Redis answers and has the scripts; then the pool is opened in full.

        Runs at start-up and from the circuit's background task, never for a request.
        """
        client, pool = self.client, self._pool
        window, leases = self._window, self._leases
        if client is None or pool is None or window is None or leases is None:
            raise RuntimeError("the Redis rate limiter is not started")
        # Connections from before an outage are dead sockets now; each would fail a request.
        await pool.disconnect()
        async with asyncio.timeout(self.background_timeout):
            await client.ping()
            await window.load()
            await leases.load()
        await self._warm_pool()

    async def _warm_pool(self) -> None:
        """Open every connection of the pool now, so that no request pays for one."""
        client = self.client
        if client is None:
            return
        # Concurrent calls each take a connection of their own.
        with contextlib.suppress(*REDIS_FAILURES):
            async with asyncio.timeout(self.background_timeout):
                await asyncio.gather(*(client.ping() for _ in range(self.max_connections)))

    async def _sync(self) -> None:
        leases = self._leases
        if leases is None:
            return
        released = list(self._unreleased)
        self._unreleased.clear()
        try:
            async with asyncio.timeout(self.background_timeout):
                await leases.sync(self.streams.tokens(REDIS), released)
        except BaseException:
            self._unreleased.extendleft(reversed(released))
            raise

    async def _refresh_forever(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping or not self.circuit.up:
                continue
            try:
                await self._sync()
            except REDIS_FAILURES as exc:
                self.circuit.failed(exc)

    def _on_state_change(self, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.up.set(1 if up else 0)
        if up:
            # Give back what was released during the outage without waiting a whole interval.
            self._wake.set()

    def _count_fallback(self, operation: str) -> None:
        self.circuit.count_fallback()
        if self.metrics is not None:
            self.metrics.fallbacks.labels(self.failure_mode, operation).inc()
