"""Issuing tokens, for services without an identity provider.

A sign-in gets a short-lived access token and a long-lived refresh token, both
signed with ``JWT_SECRET`` and told apart by their ``typ`` claim (``access`` or
``refresh``), so neither is accepted where the other is expected. Each refresh
token belongs to a family (``fam``); refreshing rotates it (see
``refresh_families``). Access tokens are not tracked: they expire within
``JWT_ACCESS_TTL_SECONDS``, and that is as long as a revoked family's last
access token keeps working.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import structlog

from .refresh_families import RefreshFamilies, Rotation
from .users import UserStore
from .verify import InvalidToken, TokenVerifier

log = structlog.get_logger("auth")


class RefreshRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    access_expires_in: int
    refresh_token: str
    refresh_expires_in: int


class TokenIssuer:
    def __init__(
        self,
        *,
        secret: bytes,
        algorithm: str,
        access_ttl: int,
        refresh_ttl: int,
        verifier: TokenVerifier,
        families: RefreshFamilies,
        users: UserStore,
        issuer: str = "",
        audience: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.algorithm = algorithm
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verifier = verifier
        self._families = families
        self._users = users
        self._issuer = issuer
        self._audience = audience
        self._clock = clock

    async def issue(self, subject: str) -> TokenPair:
        """A new pair for a user who just proved who they are: a new family."""
        family = secrets.token_urlsafe(16)
        jti = secrets.token_urlsafe(16)
        now = int(self._clock())
        await self._families.start(family, subject, jti, now + self.refresh_ttl)
        return self._pair(subject, family, jti, now)

    async def rotate(self, refresh_token: str) -> TokenPair:
        """A new pair for a refresh token, which is used up; raises ``RefreshRefused``."""
        try:
            claims = await self._verifier.verify_refresh(refresh_token)
        except InvalidToken as exc:
            log.info("refresh.rejected", reason=exc.reason)
            raise RefreshRefused("Invalid refresh token.") from None
        subject, family = claims["sub"], claims["fam"]
        if not await self._users.exists(subject):
            await self._families.revoke(family)
            raise RefreshRefused("Invalid refresh token.")
        jti = secrets.token_urlsafe(16)
        now = int(self._clock())
        outcome = await self._families.rotate(
            family, subject, claims["jti"], jti, now + self.refresh_ttl
        )
        if outcome is Rotation.REUSED:
            log.warning("refresh.reused", subject=subject, family=family)
            raise RefreshRefused("This refresh token was already used; sign in again.")
        if outcome is Rotation.REFUSED:
            raise RefreshRefused("Invalid refresh token.")
        return self._pair(subject, family, jti, now)

    def _pair(self, subject: str, family: str, refresh_jti: str, now: int) -> TokenPair:
        access = self._sign(
            {"sub": subject, "typ": "access", "jti": secrets.token_urlsafe(16)},
            now,
            self.access_ttl,
        )
        refresh = self._sign(
            {"sub": subject, "typ": "refresh", "jti": refresh_jti, "fam": family},
            now,
            self.refresh_ttl,
        )
        return TokenPair(access, self.access_ttl, refresh, self.refresh_ttl)

    def _sign(self, claims: dict[str, Any], now: int, ttl: int) -> str:
        claims = {**claims, "iat": now, "nbf": now, "exp": now + ttl}
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(claims, self._secret, algorithm=self.algorithm)
