"""The authenticated caller, shared by every layer that needs to know who it is.

Authentication middleware (API keys, or any other layer) stores one at
``scope["state"]["principal"]``; the rate limiter keys on it and the access log
names it. Anonymous callers have none.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

PRINCIPAL_STATE_KEY = "principal"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["api_key", "user"]
    id: str
    tier: str | None = None

    @property
    def rate_key(self) -> str:
        """The rate-limit key: ``key:<id>`` for API keys, ``user:<id>`` for users."""
        return ("key:" if self.kind == "api_key" else "user:") + self.id


def get_principal(scope: MutableMapping[str, Any]) -> Principal | None:
    state = scope.get("state")
    if state is None:
        return None
    principal = state.get(PRINCIPAL_STATE_KEY)
    return principal if isinstance(principal, Principal) else None


def set_principal(scope: MutableMapping[str, Any], principal: Principal) -> None:
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    state[PRINCIPAL_STATE_KEY] = principal
