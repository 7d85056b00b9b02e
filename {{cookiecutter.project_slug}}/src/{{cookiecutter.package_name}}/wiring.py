"""What an optional feature may plug into while the app is built.

``main.create_app`` builds one ``Wiring`` and hands it, with the app, to each
enabled feature's ``install``. A feature adds routes to the app itself and
everything else here: lifespan hooks, readiness checks, an authentication
layer, or a different rate-limit backend. Nothing in the always-present code
imports a feature; only ``main.py`` lists them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from .auth.authenticators import Authenticator
from .chat.service import ChatService
from .observability.metrics import Metrics
from .ratelimit.base import RateLimiter
from .settings import Settings

Hook = Callable[[FastAPI], Awaitable[Any]]
ReadinessCheck = Callable[[], Awaitable[bool]]


# A pure-ASGI authentication middleware, given the app it wraps. It sits just
# outside the API-key layer and sets the Principal for callers it recognises; the
# API-key layer lets those through, and the rate limiter inside both keys on it.
AuthLayer = Callable[[ASGIApp], ASGIApp]


@dataclass(slots=True)
class Wiring:
    settings: Settings
    service: ChatService
    metrics: Metrics
    limiter: RateLimiter
    api_prefix: str
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    auth_layers: list[AuthLayer] = field(default_factory=list)
    # For transports without HTTP middleware (gRPC, GraphQL over WebSocket).
    authenticators: list[Authenticator] = field(default_factory=list)


FeatureInstaller = Callable[[FastAPI, Wiring], None]
