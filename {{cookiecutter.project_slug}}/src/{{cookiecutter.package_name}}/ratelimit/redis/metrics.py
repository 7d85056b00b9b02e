"""Prometheus metrics of the Redis rate limiter, in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RedisLimiterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fallbacks = Counter(
            "ratelimit_redis_fallbacks_total",
            "Rate-limit decisions made without Redis, by failure mode and operation.",
            ["mode", "operation"],
            registry=registry,
        )
        self.up = Gauge(
            "ratelimit_redis_up",
            "1 while this process reaches Redis for rate limits, 0 while it falls back.",
            registry=registry,
        )
