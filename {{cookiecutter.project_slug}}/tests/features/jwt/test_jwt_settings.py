"""JWT settings: unsafe or inconsistent values stop start-up with one line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import {{cookiecutter.package_name}} as package
from {{cookiecutter.package_name}}.settings import ConfigurationError, load_settings

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "llm_provider": "openai",
    "llm_base_url": "http://127.0.0.1:9/v1",
}
STRONG = "s" * 32


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({**PRODUCTION}, ["JWT_SECRET"]),
        ({**PRODUCTION, "jwt_secret": ""}, ["JWT_SECRET"]),
        ({**PRODUCTION, "jwt_secret": "s" * 31}, ["JWT_SECRET"]),
        ({**PRODUCTION, "jwt_algorithms": "RS256,HS256", "jwt_jwks_url": "https://i/k"}, ["JWT_"]),
        ({"jwt_algorithms": "none"}, ["JWT_ALGORITHMS"]),
        ({"jwt_algorithms": "HS256,none"}, ["JWT_ALGORITHMS"]),
        ({"jwt_algorithms": ""}, ["JWT_ALGORITHMS"]),
        ({"jwt_algorithms": "RS256"}, ["JWT_JWKS_URL"]),
        ({"jwt_jwks_url": "https://idp.example/jwks.json"}, ["JWT_JWKS_URL"]),
        ({"jwt_algorithms": "RS256", "jwt_jwks_url": "file:///etc/keys"}, ["JWT_JWKS_URL"]),
        ({"jwt_ws_allowed_origins": "app.example.com"}, ["JWT_WS_ALLOWED_ORIGINS"]),
        ({"jwt_leeway_seconds": -1}, ["JWT_LEEWAY_SECONDS"]),
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


def test_production_accepts_a_strong_secret_or_keys_only() -> None:
    assert load_settings(_env_file=None, **PRODUCTION, jwt_secret=STRONG).is_production
    keys_only = load_settings(
        _env_file=None, **PRODUCTION, jwt_algorithms="RS256", jwt_jwks_url="https://idp/k"
    )
    assert keys_only.jwt_algorithms == ["RS256"]


def test_development_may_use_the_default_secret() -> None:
    settings = load_settings(_env_file=None)
    assert settings.jwt_algorithms == ["HS256"]
    assert len(settings.jwt_secret.get_secret_value()) >= 32
    assert "dev-only" not in repr(settings)


async def test_the_service_refuses_to_start_in_production_without_a_secret(
    tmp_path: Path,
) -> None:
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
    environment = {
        **os.environ,
        "PYTHONPATH": source_root,
        **{name.upper(): str(value) for name, value in PRODUCTION.items()},
    }
    environment.pop("JWT_SECRET", None)
    # Elsewhere than the project, whose .env (if any) must not take part.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        package.__name__,
        env=environment,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert process.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("invalid configuration:")
    assert "JWT_SECRET" in lines[0]


@pytest.mark.parametrize("ignore_file", [".gitignore", ".dockerignore"])
def test_the_user_store_is_kept_out_of_git_and_images(ignore_file: str) -> None:
    from {{cookiecutter.package_name}}.settings import Settings

    store = Settings.model_fields["jwt_users_file"].default
    lines = (Path(__file__).resolve().parents[3] / ignore_file).read_text().splitlines()
    # The database and SQLite's journal and WAL files beside it.
    assert store in lines
    assert f"{store}-*" in lines
