"""CORS: off unless origins are configured; refused preflights get the JSON error shape."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.settings import Settings

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from stack_helpers import assert_error_shape, assert_security_headers, without_credentials

APP_ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "Origin": APP_ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, x-api-key",
}


async def test_no_origins_means_no_cors_headers(make_settings: SettingsFactory) -> None:
    async with running(create_app(make_settings())) as http:
        simple = await http.get("/api/v1/models", headers={"Origin": APP_ORIGIN})
        preflight = await http.options("/api/v1/chat/stream", headers=PREFLIGHT)
    assert simple.status_code == 200
    for response in (simple, preflight):
        assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_allowed_preflight_passes(make_settings: SettingsFactory) -> None:
    settings = make_settings(cors_origins=APP_ORIGIN, cors_allow_credentials=True)
    async with running(create_app(settings)) as http:
        response = await http.options("/api/v1/chat/stream", headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "X-API-Key" in response.headers["access-control-allow-headers"]
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({**PREFLIGHT, "Origin": "https://evil.example.com"}, "origin"),
        ({**PREFLIGHT, "Access-Control-Request-Method": "DELETE"}, "method"),
        ({**PREFLIGHT, "Access-Control-Request-Headers": "x-secret-sauce"}, "headers"),
    ],
)
async def test_disallowed_preflight_is_refused(
    make_settings: SettingsFactory, headers: dict[str, str], reason: str
) -> None:
    async with running(create_app(make_settings(cors_origins=APP_ORIGIN))) as http:
        response = await http.options("/api/v1/chat/stream", headers=headers)
    body = assert_error_shape(response, 403, "cors_forbidden")
    assert reason in body["message"]
    if reason == "origin":
        assert "access-control-allow-origin" not in response.headers
    assert_security_headers(response)


async def test_simple_requests_echo_only_allowed_origins(make_settings: SettingsFactory) -> None:
    async with running(create_app(make_settings(cors_origins=APP_ORIGIN))) as http:
        allowed = await http.get("/api/v1/models", headers={"Origin": APP_ORIGIN})
        other = await http.get("/api/v1/models", headers={"Origin": "https://evil.example.com"})
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]
    assert "RateLimit" in allowed.headers["access-control-expose-headers"]
    assert "access-control-allow-origin" not in other.headers
    assert "Origin" in other.headers["vary"]


async def test_preflight_needs_no_api_key_but_errors_carry_cors(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(cors_origins=APP_ORIGIN, api_keys="svc:0123456789abcdef0123")
    async with running(create_app(settings)) as http:
        without_credentials(http)
        preflight = await http.options("/api/v1/chat/stream", headers=PREFLIGHT)
        refused = await http.get("/api/v1/models", headers={"Origin": APP_ORIGIN})
    assert preflight.status_code == 204
    # The browser can read the 401, because CORS wraps authentication.
    assert_error_shape(refused, 401, "unauthorized")
    assert refused.headers["access-control-allow-origin"] == APP_ORIGIN


def test_wildcard_with_credentials_is_refused_by_settings() -> None:
    with pytest.raises(ValidationError, match="cannot be combined"):
        Settings(_env_file=None, cors_origins="*", cors_allow_credentials=True)
