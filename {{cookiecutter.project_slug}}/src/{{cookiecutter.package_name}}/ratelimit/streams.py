"""How many long-lived streams each caller holds open, in one process.

A stream (an SSE response, a streamed completion, a WebSocket) ties up a
generation for as long as it runs, so a request rate limit alone does not bound
the load one caller can put on the service: ten requests a minute that each
stream for ten minutes are a hundred concurrent generations.
"""

from __future__ import annotations

import itertools

from .base import Lease


class StreamSlots:
    """Counts held slots per key; memory is proportional to the streams open now."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._live: set[str] = set()
        self._tokens = itertools.count()

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    @property
    def total(self) -> int:
        return len(self._live)

    def acquire(self, key: str, max_streams: int) -> Lease | None:
        held = self._held.get(key, 0)
        if held >= max_streams:
            return None
        self._held[key] = held + 1
        lease = Lease(key=key, token=str(next(self._tokens)))
        self._live.add(lease.token)
        return lease

    def release(self, lease: Lease) -> None:
        if lease.token not in self._live:
            return
        self._live.discard(lease.token)
        held = self._held.get(lease.key, 0) - 1
        if held > 0:
            self._held[lease.key] = held
        else:
            self._held.pop(lease.key, None)
