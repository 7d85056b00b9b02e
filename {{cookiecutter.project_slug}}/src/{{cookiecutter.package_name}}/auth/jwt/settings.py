"""Settings of ``use_jwt``: token checking, issuing and the user database.

Composed into ``settings.Settings``; the variables are documented in ``.env.example``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from ...service_settings import CommaList, ServiceSettings, split_commas


class JwtSettings(ServiceSettings):
    # HS* tokens (and the ones /api/v1/auth/token issues) are signed with this secret.
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me-0123456789")
    # Accepted "alg" values; anything else is refused before a key is looked at.
    jwt_algorithms: CommaList = Field(default_factory=lambda: ["HS256"])
    # Asymmetric keys (RS*/PS*/ES*/EdDSA) come from this JWK Set, never from a token.
    jwt_jwks_url: str = ""
    # An unknown "kid" refetches the key set at most this often.
    jwt_jwks_refresh_seconds: float = Field(default=60.0, gt=0, le=86_400)
    jwt_jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    # The key set is refetched in the background this often, so removed keys stop working.
    jwt_jwks_cache_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_access_ttl_seconds: int = Field(default=900, ge=10, le=86_400)
    jwt_refresh_ttl_seconds: int = Field(default=14 * 86_400, ge=60, le=365 * 86_400)
    # SQLite database with the users and the refresh-token families.
    jwt_users_file: str = "users.db"
    jwt_ws_allowed_origins: CommaList = Field(default_factory=list)

    _split_jwt = field_validator("jwt_algorithms", "jwt_ws_allowed_origins", mode="before")(
        split_commas
    )

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_jwt_algorithms(cls, value: list[str]) -> list[str]:
        known = (
            *("HS256", "HS384", "HS512"),
            *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
            *("ES256", "ES384", "ES512", "EdDSA"),
        )
        for name in value:
            if name not in known:
                raise ValueError(f"{name!r} is not one of {', '.join(known)}")
        if not value:
            raise ValueError("at least one algorithm is required")
        return value

    @field_validator("jwt_ws_allowed_origins")
    @classmethod
    def _valid_ws_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin such as 'https://app.example.com'")
        return [origin.rstrip("/").lower() for origin in value]

    @model_validator(mode="after")
    def _safe_jwt(self) -> JwtSettings:
        uses_secret = any(name.startswith("HS") for name in self.jwt_algorithms)
        uses_keys = not all(name.startswith("HS") for name in self.jwt_algorithms)
        if self.jwt_jwks_url and not self.jwt_jwks_url.startswith(("http://", "https://")):
            raise ValueError("JWT_JWKS_URL must be an http:// or https:// URL")
        if uses_keys and not self.jwt_jwks_url:
            raise ValueError("JWT_ALGORITHMS names an asymmetric algorithm; set JWT_JWKS_URL")
        if self.jwt_jwks_url and not uses_keys:
            raise ValueError("JWT_JWKS_URL is set but JWT_ALGORITHMS allows no asymmetric one")
        # A fake provider in production is refused by the core's validator, which runs
        # after this one: that line comes first.
        if self.environment == "production" and uses_secret and self.llm_provider != "fake":
            value = self.jwt_secret.get_secret_value()
            if value == "dev-only-jwt-secret-change-me-0123456789" or len(value.encode()) < 32:
                raise ValueError(
                    "JWT_SECRET must be a random secret of at least 32 bytes in production"
                )
        return self
