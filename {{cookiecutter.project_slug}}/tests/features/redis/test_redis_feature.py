"""The Redis settings and how the feature plugs into the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.ratelimit.redis.limiter import RedisRateLimiter
from {{cookiecutter.package_name}}.ratelimit.token_bucket import InMemoryRateLimiter
from {{cookiecutter.package_name}}.settings import ConfigurationError, load_settings

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from redis_helpers import metric, redis_server_binary


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost",
        "rediss://:a-password@redis.example.internal:6380/2",
        "redis://user:pass@[::1]:6379",
    ],
)
def test_redis_urls_accepted(url: str) -> None:
    settings = load_settings(_env_file=None, redis_url=url)
    assert settings.redis_url.get_secret_value() == url
    # The URL may carry a password: printing the settings must not show it.
    assert url not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",
        "unix:///var/run/redis.sock",
        "redis://:hunter2@host:notaport/0",
        "redis://:hunter2@/0",
        "redis://:hunter2@host:6379/cache",
        "127.0.0.1:6379",
    ],
)
def test_bad_redis_urls_stop_with_one_line_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, redis_url=url)
    message = str(caught.value)
    assert message.startswith("invalid configuration: REDIS_URL")
    assert "\n" not in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"rate_limit_failure_mode": "sometimes"}, "RATE_LIMIT_FAILURE_MODE"),
        ({"redis_timeout_ms": 0}, "REDIS_TIMEOUT_MS"),
        ({"redis_max_connections": 0}, "REDIS_MAX_CONNECTIONS"),
        ({"rate_limit_stream_lease_seconds": 1}, "RATE_LIMIT_STREAM_LEASE_SECONDS"),
    ],
)
def test_other_bad_values_are_named(overrides: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, **overrides)
    assert name in str(caught.value)


async def test_the_app_limits_through_redis(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(rate_limit_ip="2/hour", rate_limit_user="2/hour"))
    limiter = app.state.wiring.limiter
    assert isinstance(limiter, RedisRateLimiter)
    # The in-memory backend stays, as the fallback.
    assert isinstance(limiter.fallback, InMemoryRateLimiter)
    # Only the closed mode makes readiness depend on Redis (see redis_limiter).
    assert "redis" not in app.state.wiring.hooks.readiness
    async with running(app) as http:
        assert limiter.client is not None
        statuses = [(await http.get("/api/v1/models")).status_code for _ in range(3)]
        text = (await http.get("/metrics")).text
    assert statuses == [200, 200, 429]
    assert metric(text, "ratelimit_redis_up") == 1.0
    assert metric(text, "ratelimit_redis_fallbacks_total", mode="local", operation="hit") is None
    # Stopped with the lifespan: the pool is closed.
    assert limiter.client is None


async def test_closed_mode_puts_redis_in_readiness(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(rate_limit_failure_mode="closed"))
    async with running(app) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"provider": "ok", "redis": "ok"}


def test_nothing_to_share_when_rate_limiting_is_off(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(rate_limit_enabled=False))
    assert isinstance(app.state.wiring.limiter, InMemoryRateLimiter)
    assert "redis" not in app.state.wiring.hooks.readiness


def test_a_missing_redis_server_fails_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        redis_server_binary()
    assert "apt-get install redis-server" in str(failed.value)
