"""The contract between ``create_app`` and an optional feature.

A feature is a folder of its own (``ratelimit/<name>/``, ``auth/<name>/`` or a
transport beside ``api/``) and an installer here, ``features/<name>.py``, exporting one
``Feature`` class. ``create_app`` runs every enabled feature's two phases in order:

1. ``configure(setup)``: change what the shared objects are built from. Swap
   the rate-limit backend, add an authentication layer or authenticator, add
   lifespan hooks and readiness checks.
2. ``install(app, wiring)``: add routes and servers that use the finished,
   shared objects (the policy, the authenticators, the core). Nothing is
   swapped any more, so no feature depends on the order of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp

from ..auth.api_keys import ApiKeyStore
from ..auth.authenticators import Authenticator
from ..chat.service import ChatService
from ..lifecycle import Hooks
from ..observability.metrics import Metrics
from ..ratelimit.base import RateLimiter
from ..ratelimit.policy import RateLimitPolicy
from ..settings import Settings

# A pure-ASGI authentication middleware, given the app it wraps. It sits just
# outside the API-key layer and sets the Principal for callers it recognises; the
# API-key layer lets those through, and the rate limiter inside both keys on it.
AuthLayer = Callable[[ASGIApp], ASGIApp]


@dataclass(slots=True)
class Setup:
    """What features may change before the shared objects are built (phase 1)."""

    settings: Settings
    metrics: Metrics
    limiter: RateLimiter
    hooks: Hooks
    api_prefix: str
    auth_layers: list[AuthLayer]
    authenticators: list[Authenticator]


@dataclass(frozen=True, slots=True)
class Wiring:
    """The objects built once and shared by the middleware and every transport.

    ``app.state.wiring``; route dependencies read it from there.
    """

    settings: Settings
    core: ChatService
    metrics: Metrics
    limiter: RateLimiter
    policy: RateLimitPolicy
    api_keys: ApiKeyStore | None
    authenticators: tuple[Authenticator, ...]
    auth_layers: tuple[AuthLayer, ...]
    hooks: Hooks
    api_prefix: str


class Feature:
    """One optional feature's installer; ``create_app`` makes one per app.

    Per app, because what ``configure`` builds (a token verifier, say) is what
    ``install`` hands to routes, and tests build many apps in one process.
    """

    name = "feature"

    def configure(self, setup: Setup) -> None:
        """Phase 1: change what the shared objects are built from."""

    def install(self, app: FastAPI, wiring: Wiring) -> None:
        """Phase 2: add routes and servers over the finished shared objects."""
