"""The interface every rate-limit backend implements.

A backend answers two questions atomically for its scope (one process for the
in-memory backend, every worker and instance for a shared one):

* ``hit``: may this caller spend ``cost`` units of this quota now?
* ``acquire_stream``/``release_stream``: may this caller open one more
  long-lived stream, and give the slot back when it ends?

Nothing here knows about HTTP: keys are opaque strings built by the policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from limits import parse as parse_limit


@dataclass(frozen=True, slots=True)
class Quota:
    """``limit`` units per ``window`` seconds, refilled continuously.

    ``name`` labels the quota in the ``RateLimit``/``RateLimit-Policy`` headers.
    """

    limit: int
    window: int
    name: str = "default"
    # The same for every response this quota limits: built once, here.
    policy_header: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window < 1:
            raise ValueError("a quota needs a limit and a window of at least 1")
        value = f'"{self.name}";q={self.limit};w={self.window}'.encode()
        object.__setattr__(self, "policy_header", (b"ratelimit-policy", value))

    @classmethod
    def parse(cls, text: str, name: str = "default") -> Quota:
        """From a ``limits`` string such as ``"60/minute"`` or ``"10 per 5 seconds"``."""
        item = parse_limit(text)
        return cls(limit=item.amount, window=item.get_expiry(), name=name)

    @property
    def rate(self) -> float:
        """Units refilled per second."""
        return self.limit / self.window


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one ``hit``.

    ``remaining`` is what is left after this hit (whole units); ``reset_after`` is
    the number of seconds until the quota is full again; ``retry_after`` the number
    of seconds until a hit of the same cost would succeed (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` as HTTP wants it: whole seconds, never 0 for a refusal."""
        return max(1, math.ceil(self.retry_after))


@dataclass(frozen=True, slots=True)
class Lease:
    """One concurrent-stream slot, held until ``release_stream``.

    ``token`` identifies this holder so that a release is idempotent and a shared
    backend can expire slots of a crashed holder.
    """

    key: str
    token: str


class RateLimiterUnavailable(Exception):
    """The backend cannot decide now and is configured to refuse rather than guess.

    A shared backend raises it from ``hit`` or ``acquire_stream`` when its store
    is unreachable and its failure mode is "closed"; transports answer with 503.
    """

    code = "rate_limiter_unavailable"

    def __init__(self, retry_after: float = 1.0) -> None:
        super().__init__("Rate limiting is unavailable; retry shortly.")
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


class RateLimiter(Protocol):
    """What the policy needs from a backend. All methods are safe to call concurrently."""

    async def start(self, app: object) -> None:
        """Lifespan start-up hook (connect, start housekeeping)."""

    async def stop(self, app: object) -> None:
        """Lifespan shutdown hook (disconnect, stop housekeeping)."""

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``quota`` for ``key`` if they are available."""
        ...

    async def acquire_stream(self, key: str, max_streams: int) -> Lease | None:
        """Take a stream slot for ``key``; ``None`` when ``max_streams`` are already held."""
        ...

    async def release_stream(self, lease: Lease) -> None:
        """Give a slot back. Releasing twice is harmless."""
