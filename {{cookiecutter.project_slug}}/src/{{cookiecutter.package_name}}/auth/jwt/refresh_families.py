"""Refresh-token families: each sign-in starts one, each refresh moves it on.

A family remembers only the ID (``jti``) of its newest refresh token. Presenting
that one rotates the family to a new token; presenting an older one means a token
was copied, so the whole family is revoked and both the thief and the user must
sign in again (OAuth 2.0 Security BCP, refresh token rotation). Kept in the same
SQLite file as the users, so every worker sees the same families.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Protocol

from .user_db import UserDatabase


class Rotation(Enum):
    ROTATED = "rotated"
    # An older token of the family was presented: the family is now revoked.
    REUSED = "reused"
    # No such family, a revoked one, or one of another subject.
    REFUSED = "refused"


class RefreshFamilies(Protocol):
    async def start(self, family: str, subject: str, jti: str, expires_at: float) -> None: ...

    async def rotate(
        self, family: str, subject: str, presented_jti: str, new_jti: str, expires_at: float
    ) -> Rotation: ...

    async def revoke(self, family: str) -> None: ...


class SqliteRefreshFamilies:
    def __init__(self, db: UserDatabase) -> None:
        self._db = db

    async def start(self, family: str, subject: str, jti: str, expires_at: float) -> None:
        async with self._db.connect() as db:
            await db.execute("BEGIN IMMEDIATE")
            # Expired families are dead weight; sign-ins are a good time to drop them.
            await db.execute("DELETE FROM refresh_families WHERE expires_at < ?", (time.time(),))
            await db.execute(
                "INSERT INTO refresh_families (id, subject, current_jti, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (family, subject, jti, expires_at),
            )
            await db.execute("COMMIT")

    async def rotate(
        self, family: str, subject: str, presented_jti: str, new_jti: str, expires_at: float
    ) -> Rotation:
        async with self._db.connect() as db:
            # The write lock is taken before reading, so two uses of one token serialise.
            await db.execute("BEGIN IMMEDIATE")
            async with db.execute(
                "SELECT subject, current_jti, revoked FROM refresh_families WHERE id = ?",
                (family,),
            ) as rows:
                row = await rows.fetchone()
            if row is None or row[0] != subject or row[2]:
                outcome = Rotation.REFUSED
            elif row[1] != presented_jti:
                await db.execute("UPDATE refresh_families SET revoked = 1 WHERE id = ?", (family,))
                outcome = Rotation.REUSED
            else:
                await db.execute(
                    "UPDATE refresh_families SET current_jti = ?, expires_at = ? WHERE id = ?",
                    (new_jti, expires_at, family),
                )
                outcome = Rotation.ROTATED
            # Closing the connection without this commit (an error, a cancel) rolls back.
            await db.execute("COMMIT")
        return outcome

    async def revoke(self, family: str) -> None:
        async with self._db.connect() as db:
            await db.execute("UPDATE refresh_families SET revoked = 1 WHERE id = ?", (family,))
