"""An identity provider's public keys (JWK Set): fetched, cached, refreshed with restraint.

Keys come only from the configured ``JWT_JWKS_URL``; a token's own ``jku``, ``x5u``
or ``jwk`` header is never looked at. The set is fetched at start-up and again in
the background every ``JWT_JWKS_CACHE_SECONDS``, so that keys the provider removed
stop working. A token naming an unknown ``kid`` triggers a refetch, but at most
once per ``JWT_JWKS_REFRESH_SECONDS``: otherwise anyone could make the service
hammer the provider by inventing key IDs. Concurrent requests share that one
fetch, and each fetch is bounded by ``JWT_JWKS_TIMEOUT_SECONDS``, so a slow
provider delays only the requests that need a new key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from jwt import PyJWK

from ...background import stop_task

log = structlog.get_logger("auth.jwks")

# A real key set is a few KiB; this bounds what a misbehaving endpoint can make us read.
MAX_JWKS_BYTES = 1_048_576
# Retry delays after a failed fetch, before the set has ever loaded.
FIRST_RETRY_SECONDS = 0.5

# The key type (and curve) each asymmetric algorithm needs.
ALGORITHM_KEYS: dict[str, tuple[str, frozenset[str] | None]] = {
    **{name: ("RSA", None) for name in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}


class KeysUnavailable(Exception):
    """The key set has never been fetched, so no asymmetric token can be judged."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def fits(self, algorithm: str) -> bool:
        """Whether a token signed with ``algorithm`` may be checked with this key."""
        wanted = ALGORITHM_KEYS.get(algorithm)
        if wanted is None:
            return False
        kty, curves = wanted
        if self.kty != kty or (curves is not None and self.crv not in curves):
            return False
        return self.alg is None or self.alg == algorithm


def parse_key_set(document: object) -> list[SigningKey]:
    """The usable signature keys of a JWK Set; symmetric and broken entries are dropped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys = []
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kty, use, kid = entry.get("kty"), entry.get("use"), entry.get("kid")
        # A published symmetric key would be a shared secret anyone can read.
        if kty not in ("RSA", "EC", "OKP") or use not in (None, "sig"):
            continue
        if kid is not None and not isinstance(kid, str):
            continue
        try:
            parsed = PyJWK(entry)
        except Exception as exc:
            log.warning("jwks.key_skipped", kid=kid, error=type(exc).__name__)
            continue
        crv, alg = entry.get("crv"), entry.get("alg")
        keys.append(
            SigningKey(
                kid=kid,
                kty=kty,
                crv=crv if isinstance(crv, str) else None,
                alg=alg if isinstance(alg, str) else None,
                key=parsed.key,
            )
        )
    if not keys:
        raise ValueError("the JWK Set has no usable signature key")
    return keys


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        refresh_interval: float,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self._clock = clock
        self._keys: tuple[SigningKey, ...] = ()
        self.loaded = False
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifespan ------------------------------------------------------------

    async def start(self, app: object = None) -> None:
        """Fetch once (bounded by the timeout), then keep the set fresh in the background."""
        self._client = httpx.AsyncClient(timeout=self.timeout)
        await self.refresh()
        self._keeper = asyncio.create_task(self._keep_fresh(), name="jwks-refresh")

    async def stop(self, app: object = None) -> None:
        self._stopping = True
        task, self._keeper = self._keeper, None
        await stop_task(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ready(self) -> bool:
        """For ``/readyz``: the set has been fetched at least once (no fetch here)."""
        return self.loaded

    async def _keep_fresh(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while not self._stopping:
            if self.loaded:
                await asyncio.sleep(self.max_age)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.refresh_interval)
            async with self._lock:
                await self.refresh()

    # --- lookup --------------------------------------------------------------

    async def find(self, kid: str | None, algorithm: str) -> SigningKey | None:
        """The key for a token header, refetching the set once if the ``kid`` is new.

        Raises ``KeysUnavailable`` when the set could never be fetched.
        """
        key = self._match(kid, algorithm)
        if key is not None:
            return key
        # A fetch under way may bring the key: wait for it rather than refuse.
        if self._lock.locked() or self._may_refetch():
            async with self._lock:
                # Whoever held the lock may have fetched already.
                key = self._match(kid, algorithm)
                if key is None and self._may_refetch():
                    await self.refresh()
                    key = self._match(kid, algorithm)
        if key is None and not self.loaded:
            raise KeysUnavailable()
        return key

    def _match(self, kid: str | None, algorithm: str) -> SigningKey | None:
        if kid is not None:
            return next((k for k in self._keys if k.kid == kid and k.fits(algorithm)), None)
        # Providers with a single key often leave out the kid.
        fitting = [k for k in self._keys if k.fits(algorithm)]
        return fitting[0] if len(fitting) == 1 else None

    def _may_refetch(self) -> bool:
        last = self._last_attempt
        return last is None or self._clock() - last >= self.refresh_interval

    # --- fetching ------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch the set now; on failure keep the keys already known."""
        self._last_attempt = self._clock()
        try:
            async with asyncio.timeout(self.timeout):
                keys = parse_key_set(await self._download())
        except Exception as exc:
            log.warning("jwks.fetch_failed", url=self.url, error=type(exc).__name__)
            return False
        self._keys = tuple(keys)
        self.loaded = True
        log.info("jwks.fetched", url=self.url, keys=len(keys))
        return True

    async def _download(self) -> object:
        client = self._client
        if client is None:
            raise RuntimeError("the JWKS cache is not started")
        async with client.stream("GET", self.url, headers={"Accept": "application/json"}) as r:
            r.raise_for_status()
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("the JWK Set is too large")
        return json.loads(body)
