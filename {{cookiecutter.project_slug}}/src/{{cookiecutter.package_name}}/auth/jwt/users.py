"""Who may sign in: a small async user store behind an interface.

``SqliteUserStore`` is the default (see ``user_db``); anything implementing
``UserStore`` (an LDAP lookup, another database) can replace it in ``features/jwt.py``.
Only argon2 hashes are stored, never passwords.
"""

from __future__ import annotations

import re
import time
from typing import Protocol

from .user_db import UserDatabase

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
INSERT_USER = "INSERT OR IGNORE INTO users (name, password_hash, created_at) VALUES (?, ?, ?)"
REPLACE_USER = "INSERT OR REPLACE INTO users (name, password_hash, created_at) VALUES (?, ?, ?)"


def valid_username(name: str) -> bool:
    """1-64 characters of letters, digits and ``._@-``: safe in tokens, logs and keys."""
    return USERNAME.fullmatch(name) is not None


class UserStore(Protocol):
    async def password_hash(self, name: str) -> str | None:
        """The stored hash, or ``None`` when there is no such user."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def add(self, name: str, password_hash: str, *, replace: bool = False) -> bool:
        """Create the user (or, with ``replace``, set its hash); ``False`` if it already exists."""
        ...

    async def set_password_hash(self, name: str, password_hash: str) -> None: ...


class SqliteUserStore:
    def __init__(self, db: UserDatabase) -> None:
        self._db = db

    async def password_hash(self, name: str) -> str | None:
        async with (
            self._db.connect() as db,
            db.execute("SELECT password_hash FROM users WHERE name = ?", (name,)) as rows,
        ):
            row = await rows.fetchone()
        return None if row is None else str(row[0])

    async def exists(self, name: str) -> bool:
        return await self.password_hash(name) is not None

    async def add(self, name: str, password_hash: str, *, replace: bool = False) -> bool:
        statement = REPLACE_USER if replace else INSERT_USER
        async with self._db.connect() as db:
            cursor = await db.execute(statement, (name, password_hash, time.time()))
            return cursor.rowcount == 1

    async def set_password_hash(self, name: str, password_hash: str) -> None:
        async with self._db.connect() as db:
            await db.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)
            )
