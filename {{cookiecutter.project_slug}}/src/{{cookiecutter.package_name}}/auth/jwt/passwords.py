"""Password hashing with argon2id (pwdlib), off the event loop.

The parameters are OWASP's recommended minimum for argon2id (19 MiB, 2 passes,
1 lane): about 80 ms of CPU per hash. argon2-cffi's own defaults (64 MiB, 3
passes, 4 lanes) cost five times that, which a public sign-in route on a small
machine cannot afford. Hashes store their parameters, so changing them later
rehashes each password at its next sign-in.

Each hash runs in a worker thread, at most ``concurrency`` at once: a burst of
sign-ins then queues instead of taking every thread and a lot of memory.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# Longer inputs are refused before hashing; no real password comes near this.
MAX_PASSWORD_CHARS = 1024
MIN_PASSWORD_CHARS = 8


class Passwords:
    def __init__(self, concurrency: int = 4) -> None:
        self._hash = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))
        self._concurrency = concurrency
        self._limiter: anyio.CapacityLimiter | None = None
        self._decoy: str | None = None

    def _threads(self) -> anyio.CapacityLimiter:
        # Created on first use, inside the running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        return self._limiter

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._threads())

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """Whether ``password`` matches, and a new hash to store when the parameters changed.

        An unknown user (``stored is None``) is checked against a decoy hash, so the
        answer takes as long as for a real one and does not reveal who exists.
        """
        if len(password) > MAX_PASSWORD_CHARS:
            return False, None
        if stored is None:
            if self._decoy is None:
                self._decoy = await self.hash("decoy password, never valid")
            await anyio.to_thread.run_sync(
                self._hash.verify, password, self._decoy, limiter=self._threads()
            )
            return False, None
        try:
            return await anyio.to_thread.run_sync(
                self._hash.verify_and_update, password, stored, limiter=self._threads()
            )
        except Exception:
            # An unreadable stored hash is a failed login, not a server error.
            return False, None
