"""All configuration, read once from the environment and ``.env``.

Every setting is documented in ``.env.example``. A bad value stops the service
at start-up with one line that names the variable (see ``load_settings``).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal

from limits import parse as parse_limit
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]
CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_limit(value: str) -> str:
    try:
        parse_limit(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit such as '60/minute'") from None
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    # --- service -----------------------------------------------------------
    app_name: str = "{{ cookiecutter.project_name }}"
    environment: Environment = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    timeout_keep_alive: int = Field(default=5, ge=1, le=600)
    shutdown_grace_seconds: int = Field(default=10, ge=1, le=600)
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    ws_max_message_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024)
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, le=300)

    # --- generation ---------------------------------------------------------
    llm_provider: Literal["fake", "openai"] = "fake"
    llm_base_url: str = "https://api.openai.com/v1"
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = "fake-echo-1"
    llm_max_concurrency: int = Field(default=100, ge=1, le=10_000)
    llm_connect_timeout: float = Field(default=5.0, gt=0)
    llm_read_timeout: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    fake_llm_delay_ms: float = Field(default=20.0, ge=0, le=60_000)
    fake_llm_first_token_delay_ms: float = Field(default=0.0, ge=0, le=600_000)
    default_max_tokens: int = Field(default=16, ge=1, le=32_768)
    max_tokens_limit: int = Field(default=4096, ge=1, le=32_768)
    first_token_timeout: float = Field(default=30.0, gt=0)
    generation_timeout: float = Field(default=300.0, gt=0)

    # --- HTTP stack ---------------------------------------------------------
    security_headers: bool = True
    hsts_max_age: int = Field(default=63_072_000, ge=0)
    max_request_size: int = Field(default=1_048_576, ge=1024)
    cors_origins: CommaList = []
    cors_allow_credentials: bool = False

    # --- rate limits --------------------------------------------------------
    rate_limit_enabled: bool = True
    rate_limit_ip: str = "60/minute"
    rate_limit_user: str = "600/minute"
    # Per-route overrides as "path=limit" pairs, e.g. "/api/v1/chat/completions=30/minute".
    rate_limit_routes: CommaList = []
    max_concurrent_streams: int = Field(default=10, ge=1, le=100_000)
    rate_limit_max_callers: int = Field(default=100_000, ge=100)
    trusted_proxies: CommaList = []

    # --- API keys -----------------------------------------------------------
    # Entries "id:secret" or "id:secret:tier"; secrets are kept only as HMAC digests.
    # Left out of repr() so that printing the settings never shows a key.
    api_keys: CommaList = Field(default=[], repr=False)
    api_key_revoked: CommaList = []
    # Tier limits as "tier=limit" pairs, e.g. "gold=6000/minute".
    api_key_tiers: CommaList = []
    api_key_pepper: SecretStr = SecretStr("dev-only-pepper-change-me")

{%- if cookiecutter.use_redis %}

    # --- Redis (use_redis) --------------------------------------------------
    # redis:// or rediss:// (TLS), e.g. rediss://:password@host:6380/0; secret because
    # it may carry a password.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: SecretStr) -> SecretStr:
        # Imported here so that everything of this feature stays inside its block.
        from urllib.parse import urlsplit

        # The message never repeats the URL: it may carry a password.
        problem = "must be a URL such as redis://127.0.0.1:6379/0 (or rediss:// for TLS)"
        try:
            url = urlsplit(value.get_secret_value())
            _ = url.port  # reading the port is what checks it
        except ValueError:
            raise ValueError(problem) from None
        database = url.path.removeprefix("/")
        if url.scheme not in ("redis", "rediss") or not url.hostname:
            raise ValueError(problem)
        if database and not database.isdigit():
            raise ValueError("the path must be a database number, e.g. /0")
        return value

    # Longest a rate-limit decision waits for Redis (connect or reply); never retried.
    redis_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    # Connections per process, all opened at start-up; more callers wait for one.
    redis_max_connections: int = Field(default=32, ge=1, le=1024)
    # While Redis is unreachable: local (per-process limits), open (allow), closed (503).
    rate_limit_failure_mode: Literal["local", "open", "closed"] = "local"
    # A stream's slot lapses this long after its holder stopped refreshing it (a crash).
    rate_limit_stream_lease_seconds: int = Field(default=300, ge=3, le=86_400)
{%- endif %}
{%- if cookiecutter.use_jwt %}

    # --- jwt (use_jwt) ---------------------------------------------------
    # HS* tokens (and the ones /api/v1/auth/token issues) are signed with this secret.
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me-0123456789")
    # Accepted "alg" values; anything else is refused before a key is looked at.
    jwt_algorithms: CommaList = ["HS256"]
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
    jwt_ws_allowed_origins: CommaList = []

    _split_jwt = field_validator("jwt_algorithms", "jwt_ws_allowed_origins", mode="before")(
        _split_commas
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
    def _safe_jwt(self) -> Settings:
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
{%- endif %}
{%- if cookiecutter.use_grpc %}

    # --- grpc (use_grpc) ---------------------------------------------------
    grpc_enabled: bool = True
    # Empty: the same address as HOST.
    grpc_host: str = ""
    # 0 picks a free port (tests).
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    grpc_reflection: bool = True

    @model_validator(mode="after")
    def _grpc_port_usable(self) -> Settings:
        if not self.grpc_enabled:
            return self
        if self.grpc_port == self.port:
            raise ValueError("GRPC_PORT must differ from PORT")
        return self
{%- endif %}
{%- if cookiecutter.use_graphql %}

    # --- graphql (use_graphql) ---------------------------------------------------
    # Documents nested deeper, with more aliases, tokens or bytes are refused before they run.
    graphql_max_depth: int = Field(default=10, ge=1, le=100)
    graphql_max_aliases: int = Field(default=15, ge=0, le=1000)
    graphql_max_tokens: int = Field(default=1000, ge=50, le=100_000)
    graphql_max_document_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    # Operations one WebSocket may run at once.
    graphql_max_subscriptions_per_connection: int = Field(default=5, ge=1, le=1000)
    # A WebSocket that sends no connection_init within this time is closed (4408).
    graphql_connection_init_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
{%- endif %}

    _split = field_validator(
        "cors_origins",
        "rate_limit_routes",
        "trusted_proxies",
        "api_keys",
        "api_key_revoked",
        "api_key_tiers",
        mode="before",
    )(_split_commas)

    @field_validator("rate_limit_ip", "rate_limit_user")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        return _check_limit(value)

    @field_validator("rate_limit_routes", "api_key_tiers")
    @classmethod
    def _valid_pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            name, sep, limit = pair.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{pair!r} is not a 'name=limit' pair")
            _check_limit(limit.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("api_keys")
    @classmethod
    def _valid_keys(cls, value: list[str]) -> list[str]:
        for entry in value:
            parts = entry.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]):
                raise ValueError("each API key entry must be 'id:secret' or 'id:secret:tier'")
            if len(parts[1]) < 16:
                raise ValueError(f"API key {parts[0]!r} is shorter than 16 characters")
        return value

    @field_validator("api_key_tiers")
    @classmethod
    def _tiers_cover_keys(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # A mistyped tier would silently fall back to RATE_LIMIT_USER.
        tiers = {pair.partition("=")[0].strip() for pair in value}
        for entry in info.data.get("api_keys", []):
            parts = entry.split(":")
            if len(parts) == 3 and parts[2].strip() and parts[2].strip() not in tiers:
                raise ValueError(f"API key {parts[0]!r} has undefined tier {parts[2]!r}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin such as 'https://app.example.com'")
        return value

    @model_validator(mode="after")
    def _safe_combination(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS='*' cannot be combined with CORS_ALLOW_CREDENTIALS=true")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("DEFAULT_MAX_TOKENS must not exceed MAX_TOKENS_LIMIT")
        if self.llm_provider == "openai" and not self.llm_base_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("LLM_BASE_URL must be an http:// or https:// URL")
        if self.environment == "production":
            if self.llm_provider == "fake":
                raise ValueError(
                    "LLM_PROVIDER=fake is for development; set a real provider in production"
                )
            if (
                self.api_keys
                and self.api_key_pepper.get_secret_value() == "dev-only-pepper-change-me"
            ):
                raise ValueError("API_KEY_PEPPER must be set to a secret value in production")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.environment == "production"
        return self.log_format == "json"


class ConfigurationError(SystemExit):
    """Raised with one readable line when the configuration is invalid."""


def describe_error(error: ValidationError) -> str:
    """One line naming every bad variable and why it was refused."""
    problems = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def load_settings(**overrides: object) -> Settings:
    """Read the settings; exit with one clear line if they are invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(describe_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
