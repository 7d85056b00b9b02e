"""``use_redis``: rate limits and stream caps kept in Redis, shared by every worker.

``limiter.RedisRateLimiter`` implements ``ratelimit.base.RateLimiter`` over a
sliding window (``window.py``) and stream leases (``streams.py``), both Lua
scripts in ``lua/``, with a circuit breaker and a per-process fallback for
outages. ``features/redis.py`` installs it.
"""
