"""Settings: documented, validated, and refused with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from {{cookiecutter.package_name}}.settings import ConfigurationError, Settings, load_settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def test_every_setting_is_documented_in_env_example() -> None:
    documented = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set()
    assert documented - expected == set()


def test_env_example_values_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=ENV_EXAMPLE)
    assert settings.llm_provider == "fake"


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"port": 0}, ["PORT"]),
        ({"rate_limit_ip": "many"}, ["RATE_LIMIT_IP"]),
        ({"cors_origins": "*", "cors_allow_credentials": True}, ["CORS_ORIGINS"]),
        ({"cors_origins": "example.com"}, ["CORS_ORIGINS"]),
        ({"trusted_proxies": "not-an-ip"}, ["TRUSTED_PROXIES"]),
        ({"api_keys": "only-one-part"}, ["API_KEYS"]),
        ({"api_keys": "ci:short"}, ["API_KEYS"]),
        ({"environment": "production"}, ["LLM_PROVIDER"]),
        ({"default_max_tokens": 50, "max_tokens_limit": 10}, ["DEFAULT_MAX_TOKENS"]),
        ({"llm_provider": "nope"}, ["LLM_PROVIDER"]),
    ],
)
def test_bad_values_stop_with_one_line(overrides: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, **overrides)
    message = str(caught.value)
    assert message.startswith("invalid configuration:")
    assert "\n" not in message
    for name in names:
        assert name in message


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,::1")
    settings = Settings(_env_file=None)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "::1"]
