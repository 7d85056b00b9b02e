"""When to stop asking Redis, and when to try it again.

A decision that finds Redis unreachable waits at most the socket timeout; the
ones after it should not wait at all. After ``threshold`` failures in a row the
circuit opens: callers skip Redis and use the failure mode's answer at once,
and one background task probes Redis after 1 s, then 2, 4... up to 30 s, until
a probe succeeds. No request ever pays for a probe.

Why a few failures rather than one: a worker whose event loop is saturated can
see a call time out although Redis is fine; a success in between resets the
count, while a Redis that is really gone fails every concurrent call at once.
Why hand-written: the asyncio circuit breakers on PyPI (aiobreaker, purgatory)
test a half-open circuit by letting the next live call through, so a request
pays for every probe of a dead Redis; here only a background task does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from ...background import stop_task

log = structlog.get_logger("ratelimit")

Probe = Callable[[], Awaitable[None]]
StateListener = Callable[[bool], None]


class Circuit:
    def __init__(
        self,
        probe: Probe,
        *,
        threshold: int = 3,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        on_change: StateListener | None = None,
    ) -> None:
        self.probe = probe
        self.threshold = threshold
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.on_change = on_change
        self.up = True
        self.fallbacks = 0
        self._failures = 0
        self._down_since = 0.0
        self._next_probe = 0.0
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def retry_after(self) -> float:
        """Seconds until the next probe; what a refused caller is told to wait."""
        return max(0.0, self._next_probe - time.monotonic())

    def count_fallback(self) -> None:
        """One decision made without Redis; the recovery log line says how many."""
        self.fallbacks += 1

    def succeeded(self) -> None:
        self._failures = 0

    def failed(self, error: BaseException) -> None:
        self._failures += 1
        if self._failures >= self.threshold:
            self.trip(error)

    def trip(self, error: BaseException) -> None:
        """Open the circuit now (e.g. Redis unreachable at start-up) and start probing."""
        if not self.up or self._closed:
            return
        self.up = False
        self._failures = 0
        self.fallbacks = 0
        self._down_since = time.monotonic()
        self._next_probe = self._down_since + self.first_delay
        log.warning(
            "ratelimit.redis_down",
            error=type(error).__name__,
            detail=str(error)[:200],
            retry_in=self.first_delay,
        )
        if self.on_change is not None:
            self.on_change(False)
        self._recovery = asyncio.create_task(self._recover(), name="redis-recovery")

    async def _recover(self) -> None:
        delay = self.first_delay
        while not self._closed:
            await asyncio.sleep(max(0.0, self._next_probe - time.monotonic()))
            try:
                await self.probe()
            except Exception as exc:
                # Anything a probe raises means "not yet"; the next one is further away.
                delay = min(delay * 2, self.max_delay)
                self._next_probe = time.monotonic() + delay
                log.warning(
                    "ratelimit.redis_still_down",
                    error=type(exc).__name__,
                    retry_in=delay,
                    fallbacks=self.fallbacks,
                )
                continue
            break
        if self._closed:
            return
        self.up = True
        self._recovery = None
        log.info(
            "ratelimit.redis_recovered",
            down_seconds=round(time.monotonic() - self._down_since, 3),
            fallbacks=self.fallbacks,
        )
        if self.on_change is not None:
            self.on_change(True)

    async def close(self) -> None:
        self._closed = True
        task, self._recovery = self._recovery, None
        await stop_task(task)
