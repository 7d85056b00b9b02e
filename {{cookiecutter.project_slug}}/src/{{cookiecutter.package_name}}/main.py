"""The app factory: the one place that wires features, middleware and routes."""

from __future__ import annotations

from fastapi import FastAPI

from . import __version__
from .api import health
from .api.openapi import register_stream_models
from .api.v1.router import router as v1_router
{%- if cookiecutter.use_jwt %}
from .auth import jwt_feature
{%- endif %}
from .auth.api_keys import ApiKeyStore
from .auth.authenticators import ApiKeyAuthenticator, Authenticator
from .chat.providers.factory import build_provider
from .chat.service import ChatService
from .errors import install_error_handlers
{%- if cookiecutter.use_graphql %}
from .graphql import feature as graphql_feature
{%- endif %}
{%- if cookiecutter.use_grpc %}
from .grpc import feature as grpc_feature
{%- endif %}
from .lifecycle import build_lifespan
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
{%- if cookiecutter.use_redis %}
from .ratelimit import redis_feature
{%- endif %}
from .ratelimit.factory import build_rate_limiter
from .settings import Settings, get_settings
from .wiring import FeatureInstaller, Wiring

API_PREFIX = "/api/v1"

# The optional features chosen when this project was generated, in install order.
FEATURES: list[FeatureInstaller] = []
{%- if cookiecutter.use_redis %}
FEATURES.append(redis_feature.install)
{%- endif %}
{%- if cookiecutter.use_jwt %}
FEATURES.append(jwt_feature.install)
{%- endif %}
{%- if cookiecutter.use_grpc %}
FEATURES.append(grpc_feature.install)
{%- endif %}
{%- if cookiecutter.use_graphql %}
FEATURES.append(graphql_feature.install)
{%- endif %}


def api_key_authenticators(settings: Settings) -> list[Authenticator]:
    if not settings.api_keys:
        return []
    store = ApiKeyStore(
        settings.api_keys,
        pepper=settings.api_key_pepper.get_secret_value().encode(),
        revoked=settings.api_key_revoked,
    )
    return [ApiKeyAuthenticator(store)]


async def _close_provider(app: FastAPI) -> None:
    service: ChatService = app.state.chat_service
    await service.provider.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    metrics = Metrics()
    service = ChatService(
        build_provider(settings),
        default_model=settings.llm_model,
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
        first_token_timeout=settings.first_token_timeout,
        generation_timeout=settings.generation_timeout,
        observers=[metrics, GenerationLog()],
    )
    wiring = Wiring(
        settings=settings,
        service=service,
        metrics=metrics,
        limiter=build_rate_limiter(settings),
        api_prefix=API_PREFIX,
        shutdown=[_close_provider],
        authenticators=api_key_authenticators(settings),
    )
    app = FastAPI(
        title=settings.app_name,
        version=__version__,
        description="Streams LLM tokens over SSE, an OpenAI-compatible API and WebSockets.",
        lifespan=build_lifespan(wiring),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.settings = settings
    app.state.chat_service = service
    app.state.metrics = metrics
    app.state.wiring = wiring

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(v1_router, prefix=API_PREFIX)
    for install in FEATURES:
        install(app, wiring)
    app.state.rate_limiter = wiring.limiter
    app.state.readiness_checks = wiring.readiness
    register_stream_models(app)

    # Middleware, innermost first (each add_middleware wraps what is already there).
    app.add_middleware(ErrorBoundaryMiddleware)
    app.add_middleware(
        RateLimitMiddleware, settings=settings, limiter=wiring.limiter, api_prefix=API_PREFIX
    )
    app.add_middleware(ApiKeyMiddleware, settings=settings, api_prefix=API_PREFIX)
    for layer in wiring.auth_layers:
        app.add_middleware(layer)
    app.add_middleware(
        AuthFailureLimitMiddleware,
        settings=settings,
        limiter=wiring.limiter,
        api_prefix=API_PREFIX,
        guarded=bool(settings.api_keys or wiring.auth_layers),
    )
    app.add_middleware(CORSMiddleware, settings=settings)
    app.add_middleware(BodyLimitMiddleware, max_size=settings.max_request_size)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(RequestIdMiddleware, metrics=metrics)
    return app


app = create_app()
