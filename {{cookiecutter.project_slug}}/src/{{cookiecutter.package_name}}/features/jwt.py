"""``use_jwt``: bearer tokens on ``/api/v1``, token issuing, and per-user limits.

Installs the JWT layer (outside the API-key layer), an authenticator for gRPC
and GraphQL, the ``/api/v1/auth`` routes, and, with ``JWT_JWKS_URL``, the key-set
cache with its lifespan hooks and readiness check. Tokens are issued only when an
HS* algorithm is allowed: they are signed with ``JWT_SECRET``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.security import HTTPBearer, OAuth2PasswordBearer
from starlette.types import ASGIApp

from ..asgi import in_prefix
from ..auth.jwt.authenticator import JwtAuthenticator
from ..auth.jwt.keys import JwksCache
from ..auth.jwt.middleware import JwtMiddleware
from ..auth.jwt.passwords import Passwords
from ..auth.jwt.refresh_families import SqliteRefreshFamilies
from ..auth.jwt.routes import REFRESH_PATH, SIGN_IN_PATH, identity_router, issuing_router
from ..auth.jwt.tokens import TokenIssuer
from ..auth.jwt.user_db import UserDatabase
from ..auth.jwt.users import SqliteUserStore
from ..auth.jwt.verify import TokenVerifier
from ..settings import Settings
from .base import Feature, Setup, Wiring


def issuing_algorithm(settings: Settings) -> str | None:
    """The HS* algorithm issued tokens are signed with, if any is allowed."""
    return next((name for name in settings.jwt_algorithms if name.startswith("HS")), None)


def build_key_cache(settings: Settings) -> JwksCache | None:
    if not settings.jwt_jwks_url:
        return None
    return JwksCache(
        settings.jwt_jwks_url,
        timeout=settings.jwt_jwks_timeout_seconds,
        refresh_interval=settings.jwt_jwks_refresh_seconds,
        max_age=settings.jwt_jwks_cache_seconds,
    )


def document_security(
    app: FastAPI, scheme: OAuth2PasswordBearer | HTTPBearer, prefix: str, public: set[str]
) -> None:
    """Show the bearer scheme, and name it on every protected operation, in OpenAPI.

    The routes were declared without it (they know nothing of features), and a
    scheme as a route dependency would cost every request a call, so the finished
    document is amended instead; Swagger UI then offers *Authorize* and sends the token.
    """
    build = app.openapi
    name = scheme.scheme_name
    definition = scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
    requirement: list[dict[str, list[str]]] = [{name: []}]

    def openapi() -> dict[str, Any]:
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})[name] = definition
        for path, operations in schema.get("paths", {}).items():
            if in_prefix(path, prefix) and path not in public:
                for operation in operations.values():
                    operation.setdefault("security", requirement)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class JwtFeature(Feature):
    name = "jwt"

    def configure(self, setup: Setup) -> None:
        settings = setup.settings
        prefix = setup.api_prefix
        self.secret = settings.jwt_secret.get_secret_value().encode()
        keys = build_key_cache(settings)
        self.verifier = verifier = TokenVerifier(
            secret=self.secret,
            algorithms=settings.jwt_algorithms,
            keys=keys,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
        )
        self.algorithm = issuing_algorithm(settings)
        # Signing in and refreshing need no token (only when tokens are issued here).
        public = (
            {prefix + SIGN_IN_PATH, prefix + REFRESH_PATH} if self.algorithm is not None else set()
        )
        self.public = public

        if keys is not None:
            setup.hooks.startup.append(keys.start)
            setup.hooks.shutdown.append(keys.stop)
            setup.hooks.readiness["jwks"] = keys.ready

        # A class, not a closure: every entry of the middleware list is a pure-ASGI class
        # that can be inspected (and the stack's own test checks exactly that).
        class ConfiguredJwtMiddleware(JwtMiddleware):
            def __init__(self, app: ASGIApp) -> None:
                super().__init__(
                    app,
                    verifier=verifier,
                    api_prefix=prefix,
                    public_paths=public,
                    api_keys_enabled=bool(settings.api_keys),
                    ws_allowed_origins=settings.jwt_ws_allowed_origins,
                )

        setup.auth_layers.append(ConfiguredJwtMiddleware)
        # First: a bearer JWT is this one's; any other bearer value is an API key.
        setup.authenticators.insert(0, JwtAuthenticator(verifier))

    def install(self, app: FastAPI, wiring: Wiring) -> None:
        settings = wiring.settings
        prefix = wiring.api_prefix
        scheme: OAuth2PasswordBearer | HTTPBearer = HTTPBearer(bearerFormat="JWT")
        if self.algorithm is not None:
            database = UserDatabase(settings.jwt_users_file)
            users = SqliteUserStore(database)
            issuer = TokenIssuer(
                secret=self.secret,
                algorithm=self.algorithm,
                access_ttl=settings.jwt_access_ttl_seconds,
                refresh_ttl=settings.jwt_refresh_ttl_seconds,
                verifier=self.verifier,
                families=SqliteRefreshFamilies(database),
                users=users,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
            app.include_router(issuing_router(issuer, users, Passwords()), prefix=prefix)
            scheme = OAuth2PasswordBearer(tokenUrl=prefix + SIGN_IN_PATH)
        app.include_router(identity_router(), prefix=prefix)

        # At start-up, when every feature has added its routes and the app has its
        # final ``openapi`` (main replaces it after the features are installed).
        public = self.public

        async def document(app: FastAPI) -> None:
            document_security(app, scheme, prefix, public)

        wiring.hooks.startup.append(document)
