"""Pick the rate-limit backend from the settings."""

from __future__ import annotations

from ..service_settings import ServiceSettings
from .base import RateLimiter
from .token_bucket import InMemoryRateLimiter


def build_rate_limiter(settings: ServiceSettings) -> RateLimiter:
    """The in-process token-bucket backend.

    Its limits are per process: with N workers a caller gets up to N times the
    configured rate. A shared backend implements ``base.RateLimiter`` too, and a
    feature swaps it in (``features/base.Setup.limiter``).
    """
    return InMemoryRateLimiter(max_keys=settings.rate_limit_max_callers)
