"""Concurrent-stream leases in Redis, shared by every worker and instance.

Each caller has a sorted set ``rl:v1:{<caller>}:streams``: one member per open
stream (a random token), scored by the lease's expiry in Redis time. Acquiring
is one Lua script (drop lapsed leases, count, add when below the cap, extend the
set's TTL); releasing is one ``ZREM``.

A lease lapses ``lease_seconds`` after it was last refreshed, so the slots of a
worker that crashed, or lost Redis for longer than that, come back by
themselves. The leases this process holds are refreshed by ONE task (in
``limiter``) every ``lease_seconds / 3``, with one pipeline for all of
them: one round trip per interval however many streams are open, where a task
per lease would add a task, a timer and a round trip per stream. A third of the
TTL lets a refresh be missed (a Redis blip) without a live stream's lease
lapsing. Refreshing never re-creates a lease that is gone: a stream released
meanwhile must not come back, so a stream that outlived an outage longer than
the TTL is simply not counted until it ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files

from redis.asyncio import Redis

from ..base import Lease
from .keys import streams_key

LUA = files(__package__).joinpath("lua")
ACQUIRE = LUA.joinpath("acquire_stream.lua").read_text(encoding="utf-8")
REFRESH = LUA.joinpath("refresh_streams.lua").read_text(encoding="utf-8")


class HeldLeases:
    """The stream slots this process holds, and where each came from.

    ``origin`` is the backend that granted it: ``"redis"``, or the failure mode's
    stand-in (``"local"``, ``"open"``) while Redis was unreachable.
    """

    def __init__(self) -> None:
        self._leases: dict[str, tuple[Lease, str]] = {}
        self._per_key: dict[str, int] = {}

    def held(self, key: str) -> int:
        return self._per_key.get(key, 0)

    @property
    def total(self) -> int:
        return len(self._leases)

    def add(self, lease: Lease, origin: str) -> None:
        self._leases[lease.token] = (lease, origin)
        self._per_key[lease.key] = self._per_key.get(lease.key, 0) + 1

    def pop(self, lease: Lease) -> str | None:
        """The lease's origin, or ``None`` if it was already released."""
        entry = self._leases.pop(lease.token, None)
        if entry is None:
            return None
        held, origin = entry
        count = self._per_key[held.key] - 1
        if count:
            self._per_key[held.key] = count
        else:
            del self._per_key[held.key]
        return origin

    def pop_all(self, origin: str) -> list[Lease]:
        """Forget every lease from ``origin`` and return them."""
        leases = [lease for lease, where in self._leases.values() if where == origin]
        for lease in leases:
            self.pop(lease)
        return leases

    def tokens(self, origin: str) -> dict[str, list[str]]:
        """Tokens of the leases from ``origin``, by caller key."""
        by_key: dict[str, list[str]] = {}
        for lease, where in self._leases.values():
            if where == origin:
                by_key.setdefault(lease.key, []).append(lease.token)
        return by_key


class RedisStreamLeases:
    def __init__(self, client: Redis, lease_seconds: float) -> None:
        self.client = client
        self.ttl_ms = max(1, round(lease_seconds * 1000))
        # redis-py's Script does EVALSHA, then SCRIPT LOAD and one retry on NOSCRIPT.
        self.acquire_script = client.register_script(ACQUIRE)
        self.refresh_script = client.register_script(REFRESH)

    async def load(self) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.script_load(ACQUIRE)
            pipe.script_load(REFRESH)
            await pipe.execute()

    async def acquire(self, key: str, max_streams: int, token: str) -> Lease | None:
        reply = await self.acquire_script(
            keys=[streams_key(key)], args=[max_streams, self.ttl_ms, token]
        )
        return Lease(key=key, token=token) if int(reply[0]) == 1 else None

    async def release(self, lease: Lease) -> None:
        await self.client.zrem(streams_key(lease.key), lease.token)

    async def sync(self, held: Mapping[str, Sequence[str]], released: Iterable[Lease]) -> None:
        """Extend the leases still held and drop those released while Redis was away."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key, tokens in held.items():
                await self.refresh_script(
                    keys=[streams_key(key)], args=[self.ttl_ms, *tokens], client=pipe
                )
            for lease in released:
                pipe.zrem(streams_key(lease.key), lease.token)
            if len(pipe):
                await pipe.execute()
