"""Request rate limits in Redis: a sliding window counter, one Lua script per decision.

The algorithm keeps two fixed-window counters per caller, this window's and the
previous one's, and estimates the hits of the last ``W`` seconds as::

    estimate = current + previous * (1 - f)

where ``f`` in [0, 1) is how much of the current window has passed. A hit is
allowed when ``estimate + cost <= limit``. It is what a true sliding window
(a log of every hit) would decide if the previous window's hits had been spread
evenly over it, at the cost of two integers per caller instead of a log.

Error bound. Let ``L`` be the limit and ``p`` the previous window's count. The
true count of the last ``W`` seconds is ``current + p'``, where ``p'`` (between 0
and ``p``) is how many of the previous window's hits fell in its last ``(1 - f)W``
seconds, so ``estimate - true`` lies in ``[-p*f, p*(1 - f)]``:

* It admits too many only when the previous window's hits came late in it.
  After an admission the last ``W`` seconds hold at most ``L + p*f <= L * (1 + f)``
  hits: just after a boundary (small ``f``) barely more than ``L``, where a fixed
  window admits ``2L``. The adversarial worst case, a full burst right before a
  boundary and then a steady trickle through the next window, approaches ``2L``
  as ``f`` nears 1.
* It refuses early only when the previous window's hits came early in it, by at
  most ``p * (1 - f)``.
* It is exact when the previous window is empty or evenly used. One fixed window
  never admits more than ``L``, so the long-run rate never exceeds ``L`` per ``W``.

Atomicity and cost: the script reads both counters, decides, increments and sets
the expiry in one ``EVALSHA``, so concurrent workers and instances never both
take the last unit, and each decision is exactly one round trip. The script is
loaded once (``SCRIPT LOAD``); after a ``SCRIPT FLUSH`` or a restart of Redis the
``NOSCRIPT`` reply makes it load again and retry, once. Time comes from Redis
(``TIME``), never from the app's clock, so skewed hosts agree. Counters expire
by themselves at the end of the window after their own (``PEXPIRE``, about two
windows), so idle callers cost nothing.
"""

from __future__ import annotations

from importlib.resources import files

from redis.asyncio import Redis

from .base import Decision, Quota
from .redis_keys import caller_prefix

SCRIPT = files(__package__).joinpath("lua", "sliding_window.lua").read_text(encoding="utf-8")


class SlidingWindow:
    def __init__(self, client: Redis) -> None:
        # redis-py's Script does exactly EVALSHA, then SCRIPT LOAD and one retry on NOSCRIPT.
        self.script = client.register_script(SCRIPT)
        self.client = client

    async def load(self) -> None:
        """Load the script ahead of the first decision (and after Redis came back)."""
        await self.client.script_load(SCRIPT)

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        reply = await self.script(
            keys=[caller_prefix(key)], args=[quota.limit, quota.window * 1000, cost]
        )
        allowed, limit, remaining, reset_after_ms, retry_after_ms = (int(x) for x in reply)
        return Decision(
            allowed=allowed == 1,
            limit=limit,
            remaining=remaining,
            reset_after=reset_after_ms / 1000,
            retry_after=retry_after_ms / 1000,
        )
