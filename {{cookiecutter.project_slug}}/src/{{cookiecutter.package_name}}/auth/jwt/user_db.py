"""The SQLite file (``JWT_USERS_FILE``) that holds users and refresh-token families.

SQLite rather than a JSON file so that every worker and the ``add-user`` command
can share it safely: each change is one transaction, and rotating a refresh token
cannot race with a second use of the same token, even across processes. aiosqlite
runs each connection in its own thread, so the event loop never waits on the disk.
A connection per operation keeps nothing open between requests; the token routes
are rare next to the streams, and argon2 costs far more than opening the file.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

# Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT = 5.0

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_families (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    current_jti TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_families_expiry ON refresh_families (expires_at);
"""


class UserDatabase:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._ready = False

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[aiosqlite.Connection]:
        """A connection in autocommit mode; use ``BEGIN IMMEDIATE`` for a transaction."""
        if not self.path.exists():
            # Password hashes are nobody else's business: owner-only from the start.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)
        async with aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None) as db:
            if not self._ready:
                await db.executescript(SCHEMA)
                self._ready = True
            yield db
