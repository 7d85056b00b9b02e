"""Rate-limit policy: which quota applies to whom, independent of any transport.

The HTTP middleware is one caller of this module; any other transport uses it
the same way::

    policy = RateLimitPolicy.from_settings(settings, limiter)
    if policy.enabled:
        caller = policy.caller(principal, peer_ip)        # or forwarded_for=...
        verdict = await policy.check(caller, "/chat.Chat/Stream")
        if not verdict.allowed:
            ...  # refuse; verdict.retry_after_seconds, verdict.headers()
        async with policy.stream(caller):                # raises TooManyStreams
            ...  # run the stream; the slot is freed however it ends

Quotas, most specific first: a per-operation override from
``RATE_LIMIT_ROUTES`` (exact match, its own bucket per caller), then the API
key's tier from ``API_KEY_TIERS``, then ``RATE_LIMIT_USER`` for any
authenticated caller, then ``RATE_LIMIT_IP`` for anonymous ones.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.types import Scope

from ..asgi import get_joined_header
from ..auth.principal import Principal
from ..service_settings import ServiceSettings
from .base import Decision, Lease, Quota, RateLimiter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# One IPv6 subscriber usually gets a whole /64; limiting single addresses would
# let one client rotate through 2**64 of them.
IPV6_GROUP_PREFIX = 64
ADDRESS_CACHE_SIZE = 4096


class TooManyStreams(Exception):
    """The caller already holds its maximum number of concurrent streams."""

    code = "too_many_streams"

    def __init__(self, max_streams: int) -> None:
        super().__init__(f"At most {max_streams} concurrent streams are allowed; close one first.")
        self.max_streams = max_streams


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is being limited.

    ``key`` names the caller's buckets: ``key:<id>``, ``user:<id>`` or ``ip:<address>``.
    """

    key: str
    principal: Principal | None = None
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    quota: Quota
    decision: Decision

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def retry_after_seconds(self) -> int:
        return self.decision.retry_after_seconds

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers),
        plus ``Retry-After`` on a refusal; other transports can send the same pairs.
        """
        quota, decision = self.quota, self.decision
        reset = math.ceil(decision.reset_after)
        headers = [
            quota.policy_header,
            (b"ratelimit", f'"{quota.name}";r={decision.remaining};t={reset}'.encode()),
        ]
        if not decision.allowed:
            headers.append((b"retry-after", str(decision.retry_after_seconds).encode()))
        return headers


def parse_ip(text: str | None) -> IPAddress | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_key(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False)
        return f"ip:{network}"
    return f"ip:{address}"


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``"name=limit"`` pairs (validated by the settings) as a dict."""
    result = {}
    for pair in pairs:
        name, _, limit = pair.partition("=")
        result[name.strip()] = limit.strip()
    return result


class RateLimitPolicy:
    def __init__(
        self,
        limiter: RateLimiter,
        *,
        ip_quota: Quota,
        user_quota: Quota,
        tier_quotas: Mapping[str, Quota] | None = None,
        route_quotas: Mapping[str, Quota] | None = None,
        max_streams: int,
        trusted_proxies: Iterable[str] = (),
        enabled: bool = True,
    ) -> None:
        self.limiter = limiter
        self.enabled = enabled
        self.ip_quota = ip_quota
        self.user_quota = user_quota
        self.tier_quotas = dict(tier_quotas or {})
        self.route_quotas = dict(route_quotas or {})
        self.max_streams = max_streams
        self.trusted_proxies: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in trusted_proxies
        )
        # Parsing an address (and grouping IPv6 by /64) is most of what naming a
        # caller costs, and a client sends many requests: bounded by the cache size.
        # Callers are immutable, so an anonymous one is shared by its requests.
        self._anonymous = functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)(self._resolve_anonymous)

    @classmethod
    def from_settings(cls, settings: ServiceSettings, limiter: RateLimiter) -> RateLimitPolicy:
        return cls(
            limiter,
            ip_quota=Quota.parse(settings.rate_limit_ip, "ip"),
            user_quota=Quota.parse(settings.rate_limit_user, "user"),
            tier_quotas={
                tier: Quota.parse(limit, tier)
                for tier, limit in parse_pairs(settings.api_key_tiers).items()
            },
            route_quotas={
                path: Quota.parse(limit, "route")
                for path, limit in parse_pairs(settings.rate_limit_routes).items()
            },
            max_streams=settings.max_concurrent_streams,
            trusted_proxies=settings.trusted_proxies,
            enabled=settings.rate_limit_enabled,
        )

    # --- who is calling ------------------------------------------------------

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted_proxies)

    def client_ip(self, peer: str | None, forwarded_for: str | None = None) -> IPAddress | None:
        """The peer's address, or the client's from ``X-Forwarded-For`` behind a trusted proxy.

        Walks the header from the right (the hop our proxy appended) and stops at
        the first address that is not a trusted proxy: everything left of it was
        written by the client and may be forged.
        """
        address = parse_ip(peer)
        if (
            address is None
            or not forwarded_for
            or not self.trusted_proxies
            or not self.is_trusted(address)
        ):
            return address
        for part in reversed(forwarded_for.split(",")):
            hop = parse_ip(part)
            if hop is None:
                break
            address = hop
            if not self.is_trusted(hop):
                break
        return address

    def caller(
        self, principal: Principal | None, peer: str | None, forwarded_for: str | None = None
    ) -> Caller:
        anonymous = self._anonymous(peer, forwarded_for)
        if principal is not None:
            return Caller(principal.rate_key, principal, anonymous.ip)
        return anonymous

    def _resolve_anonymous(self, peer: str | None, forwarded_for: str | None) -> Caller:
        """The caller as whom a connection from this address is limited when anonymous."""
        address = self.client_ip(peer, forwarded_for)
        if address is None:
            return Caller("ip:unknown")
        return Caller(ip_key(address), None, str(address))

    # --- request rate --------------------------------------------------------

    def quota_for(self, caller: Caller, operation: str) -> tuple[Quota, str]:
        """The quota that applies and the bucket key it is counted in."""
        route = self.route_quotas.get(operation)
        if route is not None:
            return route, f"{caller.key}|{operation}"
        principal = caller.principal
        if principal is None:
            return self.ip_quota, caller.key
        if principal.tier is not None:
            tier = self.tier_quotas.get(principal.tier)
            if tier is not None:
                return tier, caller.key
        return self.user_quota, caller.key

    async def check(self, caller: Caller, operation: str, cost: int = 1) -> Verdict:
        """Spend ``cost`` units of the caller's quota for ``operation``.

        ``operation`` is what ``RATE_LIMIT_ROUTES`` matches: an HTTP path, or another
        transport's operation name.
        """
        quota, key = self.quota_for(caller, operation)
        return Verdict(quota, await self.limiter.hit(key, quota, cost))

    # --- concurrent streams --------------------------------------------------

    async def open_stream(self, caller: Caller) -> Lease | None:
        """Take one of the caller's stream slots; ``None`` when all are in use."""
        return await self.limiter.acquire_stream(caller.key, self.max_streams)

    async def close_stream(self, lease: Lease) -> None:
        await self.limiter.release_stream(lease)

    @asynccontextmanager
    async def stream(self, caller: Caller) -> AsyncIterator[Lease]:
        """Hold a stream slot for the body of the block; raises ``TooManyStreams``."""
        lease = await self.open_stream(caller)
        if lease is None:
            raise TooManyStreams(self.max_streams)
        try:
            yield lease
        finally:
            await self.close_stream(lease)


FORWARDED_FOR = b"x-forwarded-for"


def caller_of(policy: RateLimitPolicy, scope: Scope, principal: Principal | None) -> Caller:
    """Who an HTTP or WebSocket connection is limited as: its principal, else its address.

    ``X-Forwarded-For`` is read only when ``TRUSTED_PROXIES`` is set (the policy
    then takes the address from it only if the peer is one of those proxies).
    """
    client = scope.get("client")
    forwarded = get_joined_header(scope, FORWARDED_FOR) if policy.trusted_proxies else None
    return policy.caller(
        principal,
        client[0] if client else None,
        forwarded.decode("latin-1") if forwarded is not None else None,
    )
