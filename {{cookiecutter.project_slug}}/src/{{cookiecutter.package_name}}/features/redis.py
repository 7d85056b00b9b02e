"""``use_redis``: rate limits and stream caps shared through Redis.

Replaces the in-memory backend with ``RedisRateLimiter``, which keeps the
in-memory one as its ``local`` fallback. The lifespan starts and stops it
(connection pool, lease refresher) like any backend. Nothing is installed when
rate limiting is disabled: there is nothing to share.
"""

from __future__ import annotations

from ..ratelimit.redis.limiter import RedisRateLimiter
from ..ratelimit.redis.metrics import RedisLimiterMetrics
from ..ratelimit.token_bucket import InMemoryRateLimiter
from .base import Feature, Setup


class RedisFeature(Feature):
    name = "redis"

    def configure(self, setup: Setup) -> None:
        settings = setup.settings
        if not settings.rate_limit_enabled:
            return
        fallback = setup.limiter
        if not isinstance(fallback, InMemoryRateLimiter):
            fallback = InMemoryRateLimiter(max_keys=settings.rate_limit_max_callers)
        limiter = RedisRateLimiter(
            settings.redis_url.get_secret_value(),
            timeout=settings.redis_timeout_ms / 1000,
            max_connections=settings.redis_max_connections,
            failure_mode=settings.rate_limit_failure_mode,
            lease_seconds=settings.rate_limit_stream_lease_seconds,
            fallback=fallback,
            metrics=RedisLimiterMetrics(setup.metrics.registry),
        )
        setup.limiter = limiter
        if settings.rate_limit_failure_mode == "closed":
            # Only here does losing Redis stop this instance from serving
            # (see ratelimit/redis/limiter.py).
            setup.hooks.readiness["redis"] = limiter.ready
