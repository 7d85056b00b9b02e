"""Settings of ``use_redis``: where Redis is and how the limiter uses it.

Composed into ``settings.Settings``; the variables are documented in ``.env.example``.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from ...service_settings import ServiceSettings


class RedisSettings(ServiceSettings):
    # redis:// or rediss:// (TLS), e.g. rediss://:password@host:6380/0; secret because
    # it may carry a password.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: SecretStr) -> SecretStr:
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
