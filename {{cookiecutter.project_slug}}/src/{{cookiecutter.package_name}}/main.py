"""The app factory: builds the shared objects once, lets features configure and
install themselves, and declares the middleware stack.

Served with ``uvicorn <package>.main:create_app --factory`` (``python -m
<package>`` does exactly that): nothing is built at import.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from . import __version__
from .api import health
from .api.openapi import register_stream_models
from .api.v1.router import router as v1_router
from .asgi import API_PREFIX
from .auth.api_keys import ApiKeyStore
from .auth.authenticators import ApiKeyAuthenticator, Authenticator
from .chat.providers.factory import build_provider
from .chat.service import ChatService
from .errors import install_error_handlers
from .features import FEATURES
from .features.base import Setup, Wiring
from .lifecycle import Hooks, build_lifespan
from .middleware.api_key import ApiKeyMiddleware
from .middleware.auth_failures import AuthFailureLimitMiddleware
from .middleware.body_limit import BodyLimitMiddleware
from .middleware.cors import CORSMiddleware
from .middleware.error_boundary import ErrorBoundaryMiddleware
from .middleware.rate_limit import RateLimitMiddleware
from .middleware.request_id import RequestIdMiddleware
from .middleware.security_headers import SecurityHeadersMiddleware
from .observability.logging import GenerationLog, configure_logging
from .observability.metrics import Metrics
from .ratelimit.factory import build_rate_limiter
from .ratelimit.policy import RateLimitPolicy
from .settings import Settings, get_settings


def build_api_keys(settings: Settings) -> ApiKeyStore | None:
    """The API-key store, or None when ``API_KEYS`` is empty.

    The raw secrets are not kept past this call: only their digests are.
    """
    if not settings.api_keys:
        return None
    return ApiKeyStore(
        settings.api_keys,
        pepper=settings.api_key_pepper.get_secret_value().encode(),
        revoked=settings.api_key_revoked,
    )


def api_key_authenticators(store: ApiKeyStore | None) -> list[Authenticator]:
    """For transports without the HTTP layers, which ask authenticators instead."""
    return [ApiKeyAuthenticator(store)] if store is not None else []


def middleware_stack(wiring: Wiring) -> list[Middleware]:
    """The pure-ASGI layers, outermost first."""
    settings = wiring.settings
    return [
        Middleware(RequestIdMiddleware, metrics=wiring.metrics),
        Middleware(SecurityHeadersMiddleware, settings=settings),
        Middleware(BodyLimitMiddleware, max_size=settings.max_request_size),
        Middleware(CORSMiddleware, settings=settings),
        Middleware(
            AuthFailureLimitMiddleware,
            policy=wiring.policy,
            api_prefix=wiring.api_prefix,
            guarded=bool(wiring.api_keys or wiring.auth_layers),
        ),
        *(Middleware(layer) for layer in wiring.auth_layers),
        Middleware(ApiKeyMiddleware, store=wiring.api_keys, api_prefix=wiring.api_prefix),
        Middleware(RateLimitMiddleware, policy=wiring.policy, api_prefix=wiring.api_prefix),
        Middleware(ErrorBoundaryMiddleware),
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    metrics = Metrics()
    core = ChatService(
        build_provider(settings),
        default_model=settings.llm_model,
        models=settings.models,
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
        first_token_timeout=settings.first_token_timeout,
        generation_timeout=settings.generation_timeout,
        observers=[metrics, GenerationLog()],
    )
    api_keys = build_api_keys(settings)
    hooks = Hooks()

    async def close_provider(_app: FastAPI) -> None:
        await core.provider.aclose()

    hooks.shutdown.append(close_provider)

    features = [make() for make in FEATURES]
    setup = Setup(
        settings=settings,
        metrics=metrics,
        limiter=build_rate_limiter(settings),
        hooks=hooks,
        api_prefix=API_PREFIX,
        auth_layers=[],
        authenticators=api_key_authenticators(api_keys),
    )
    for feature in features:
        feature.configure(setup)
    wiring = Wiring(
        settings=settings,
        core=core,
        metrics=metrics,
        limiter=setup.limiter,
        policy=RateLimitPolicy.from_settings(settings, setup.limiter),
        api_keys=api_keys,
        authenticators=tuple(setup.authenticators),
        auth_layers=tuple(setup.auth_layers),
        hooks=hooks,
        api_prefix=API_PREFIX,
    )

    app = FastAPI(
        title=settings.app_name,
        version=__version__,
        description="Streams LLM tokens over SSE, an OpenAI-compatible API and WebSockets.",
        lifespan=build_lifespan(core, wiring.limiter, hooks),
        middleware=middleware_stack(wiring),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.wiring = wiring
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(v1_router, prefix=API_PREFIX)
    for feature in features:
        feature.install(app, wiring)
    register_stream_models(app)
    return app
