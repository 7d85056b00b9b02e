"""The authenticators that non-HTTP transports use, built from the same API keys."""

from __future__ import annotations

import pytest

from {{cookiecutter.package_name}}.auth.authenticators import AuthenticationError, authenticate
from {{cookiecutter.package_name}}.main import api_key_authenticators, build_api_keys

from conftest import SettingsFactory

KEY = "ci:0123456789abcdef0123:gold"


async def test_no_keys_configured_means_anonymous(make_settings: SettingsFactory) -> None:
    authenticators = api_key_authenticators(build_api_keys(make_settings()))
    assert authenticators == []
    assert await authenticate(authenticators, {}) is None


async def test_good_key_gives_the_principal(make_settings: SettingsFactory) -> None:
    settings = make_settings(api_keys=KEY, api_key_tiers="gold=10/minute")
    principal = await authenticate(
        api_key_authenticators(build_api_keys(settings)), {"x-api-key": "0123456789abcdef0123"}
    )
    assert principal is not None
    assert (principal.kind, principal.id, principal.tier) == ("api_key", "ci", "gold")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "required"),
        ({"x-api-key": "wrong-key-wrong-key"}, "not valid"),
    ],
)
async def test_missing_or_bad_key_is_refused(
    make_settings: SettingsFactory, metadata: dict[str, str], message: str
) -> None:
    settings = make_settings(api_keys=KEY, api_key_tiers="gold=10/minute")
    with pytest.raises(AuthenticationError) as caught:
        await authenticate(api_key_authenticators(build_api_keys(settings)), metadata)
    assert message in caught.value.message


async def test_revoked_key_is_refused(make_settings: SettingsFactory) -> None:
    settings = make_settings(api_keys=KEY, api_key_tiers="gold=10/minute", api_key_revoked="ci")
    with pytest.raises(AuthenticationError, match="revoked"):
        await authenticate(
            api_key_authenticators(build_api_keys(settings)), {"x-api-key": "0123456789abcdef0123"}
        )
