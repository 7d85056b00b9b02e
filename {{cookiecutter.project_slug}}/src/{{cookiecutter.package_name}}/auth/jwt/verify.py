"""Checking a bearer token: size, algorithm allow-list, key choice, signature, claims.

The key is chosen by the algorithm family the token claims, and only after that
algorithm passed the allow-list: HS* tokens are checked with ``JWT_SECRET`` only,
asymmetric ones with a key of the matching type from the configured JWK Set only.
So an HS256 token "signed" with the provider's public key is never checked
against that key, and ``alg: none`` never gets that far. Whatever fails, the
caller learns only "invalid token" (or that a correctly signed token expired).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jwt

from .keys import ALGORITHM_KEYS, JwksCache

# Larger tokens are refused before any parsing; real ones are well under 2 KiB.
MAX_TOKEN_BYTES = 8192
# Rate-limit keys and log fields are built from the subject.
MAX_SUBJECT_CHARS = 256
# "typ" claims that mean an access token: ours, and Keycloak-style "Bearer".
ACCESS_TYPES = frozenset({"access", "bearer"})


class InvalidToken(Exception):
    """The token is refused. ``message`` is safe to show; ``reason`` is for the log only."""

    message = "Invalid token."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExpiredToken(InvalidToken):
    """Correctly signed, but past ``exp``: the client should refresh or sign in again."""

    message = "The token has expired."


class TokenVerifier:
    def __init__(
        self,
        *,
        secret: bytes,
        algorithms: Sequence[str],
        keys: JwksCache | None,
        audience: str = "",
        issuer: str = "",
        leeway: float = 30,
    ) -> None:
        self._secret = secret
        self.hmac_algorithms = frozenset(a for a in algorithms if a.startswith("HS"))
        self.key_algorithms = frozenset(a for a in algorithms if a in ALGORITHM_KEYS)
        self.keys = keys
        self.audience = audience or None
        self.issuer = issuer or None
        self.leeway = leeway

    async def verify_access(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token; raises ``InvalidToken``/``KeysUnavailable``."""
        claims = await self._decode(token, self.hmac_algorithms | self.key_algorithms, ())
        kind = claims.get("typ")
        # Identity providers' tokens usually carry no "typ": they are access tokens.
        if kind is not None and (not isinstance(kind, str) or kind.lower() not in ACCESS_TYPES):
            raise InvalidToken(f"typ {kind!r} is not an access token")
        return claims

    async def verify_refresh(self, token: str) -> dict[str, Any]:
        """The claims of a refresh token this service issued (HS* only)."""
        claims = await self._decode(token, self.hmac_algorithms, ("jti", "fam", "typ"))
        if claims["typ"] != "refresh":
            raise InvalidToken("not a refresh token")
        if not isinstance(claims["jti"], str) or not isinstance(claims["fam"], str):
            raise InvalidToken("malformed refresh token")
        return claims

    async def _decode(
        self, token: str, allowed: frozenset[str], required: Sequence[str]
    ) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        if not token.isascii() or token.count(".") != 2:
            raise InvalidToken("not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"bad header: {type(exc).__name__}") from None
        algorithm = header.get("alg")
        kid = header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in allowed:
            raise InvalidToken(f"algorithm {algorithm!r} not allowed")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("kid is not a string")
        # No JWS extension is understood here, so a critical one must be refused (RFC 7515).
        if "crit" in header or "b64" in header:
            raise InvalidToken("unsupported critical header")
        key = await self._key_for(algorithm, kid)
        require = ["exp", "sub", *required]
        if self.audience is not None:
            require.append("aud")
        if self.issuer is not None:
            require.append("iss")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": require, "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken("expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise InvalidToken("bad subject")
        return claims

    async def _key_for(self, algorithm: str, kid: str | None) -> Any:
        if algorithm in self.hmac_algorithms:
            return self._secret
        if self.keys is None:
            raise InvalidToken("no key set configured")
        signing_key = await self.keys.find(kid, algorithm)
        if signing_key is None:
            raise InvalidToken("unknown kid")
        return signing_key.key
