"""The service's own settings; each optional feature adds its own beside its code.

Every setting is documented in ``.env.example``; ``settings.Settings`` composes
these with the enabled features' settings.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Annotated, Literal

from limits import parse as parse_limit
from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import PROJECT_NAME

Environment = Literal["development", "test", "production"]
CommaList = Annotated[list[str], NoDecode]


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_limit(value: str) -> str:
    try:
        parse_limit(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit such as '60/minute'") from None
    return value


class ServiceSettings(BaseSettings):
    """The settings every variant has; features add theirs in subclasses."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    # --- service -----------------------------------------------------------
    app_name: str = PROJECT_NAME
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
    # The models offered, comma-separated: "name", or "name=upstream-name" to serve
    # an upstream model under another name. Empty: LLM_MODEL alone. Anything else
    # is refused (404 model_not_found) and never reaches the upstream.
    llm_models: CommaList = Field(default_factory=list)
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

    _split = field_validator(
        "cors_origins",
        "llm_models",
        "rate_limit_routes",
        "trusted_proxies",
        "api_keys",
        "api_key_revoked",
        "api_key_tiers",
        mode="before",
    )(split_commas)

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

    @field_validator("llm_models")
    @classmethod
    def _valid_models(cls, value: list[str]) -> list[str]:
        public: set[str] = set()
        for entry in value:
            name, sep, upstream = (part.strip() for part in entry.partition("="))
            if not name or (sep and not upstream) or len(name) > 200 or len(upstream) > 200:
                raise ValueError(f"{entry!r} is not 'name' or 'name=upstream-name'")
            if name in public:
                raise ValueError(f"{name!r} is listed twice")
            public.add(name)
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
    def _safe_combination(self) -> ServiceSettings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS='*' cannot be combined with CORS_ALLOW_CREDENTIALS=true")
        if self.llm_models and self.llm_model not in self.models:
            raise ValueError("LLM_MODEL must be one of the names in LLM_MODELS")
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

    # Cached: /models reads it on every request, and settings do not change.
    @cached_property
    def models(self) -> dict[str, str]:
        """Each public model name and the upstream's name for it."""
        entries = self.llm_models or [self.llm_model]
        pairs = (entry.partition("=") for entry in entries)
        return {name.strip(): (upstream.strip() or name.strip()) for name, _, upstream in pairs}

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.environment == "production"
        return self.log_format == "json"
