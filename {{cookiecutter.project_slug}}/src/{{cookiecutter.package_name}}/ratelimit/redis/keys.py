"""Names of the rate limiter's Redis keys.

Every key is ``rl:v1:{<caller key>}:...``: ``rl`` keeps them apart from other
data in the same database, ``v1`` lets a later layout coexist with this one
during a rolling deploy, and the braces are a Redis Cluster hash tag, so all of
one caller's keys live in one slot and a Lua script may touch them together.

* ``rl:v1:{<caller>}:<window start in ms>``: one fixed-window counter.
* ``rl:v1:{<caller>}:streams``: the caller's stream leases (a sorted set).
"""

from __future__ import annotations

NAMESPACE = "rl:v1"

# A caller key is built from client input (a JWT subject, a route): escaping the
# braces keeps it from closing the hash tag early and so from sharing a slot, or
# a name, with another caller's keys.
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def caller_prefix(caller_key: str) -> str:
    """``rl:v1:{<caller>}``, the part every key of this caller starts with."""
    return f"{NAMESPACE}:{{{caller_key.translate(_ESCAPES)}}}"


def window_key(caller_key: str, window_start_ms: int) -> str:
    return f"{caller_prefix(caller_key)}:{window_start_ms}"


def streams_key(caller_key: str) -> str:
    return f"{caller_prefix(caller_key)}:streams"
