"""Rate limits and the concurrent-stream cap, behind one small async interface.

``base`` is the interface a backend implements (``token_bucket`` is the
in-memory one); ``policy`` turns settings and a caller into quotas and is the
entry point for every transport that limits callers.
"""

from .base import Decision, Lease, Quota, RateLimiter
from .policy import Caller, RateLimitPolicy, TooManyStreams, Verdict

__all__ = [
    "Caller",
    "Decision",
    "Lease",
    "Quota",
    "RateLimitPolicy",
    "RateLimiter",
    "TooManyStreams",
    "Verdict",
]
