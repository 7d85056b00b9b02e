"""Who a token makes the caller: per-user limits, API keys alongside, other transports."""

from __future__ import annotations

from typing import Any

import pytest

from {{cookiecutter.package_name}}.auth.authenticators import AuthenticationError, authenticate

# isort: split
# Test helpers come after the package, whatever the package is named.
from jwt_helpers import bearer, claims_for, hs_token, now
from stack_helpers import assert_error_shape, without_credentials

KEY = "0123456789abcdef0123"
PATH = "/api/v1/models"


async def test_each_user_has_its_own_quota(client_factory: Any) -> None:
    alice = bearer(hs_token(claims_for("alice")))
    bob = bearer(hs_token(claims_for("bob")))
    async with client_factory(rate_limit_user="3/hour", rate_limit_ip="100/hour") as http:
        first = [(await http.get(PATH, headers=alice)).status_code for _ in range(4)]
        second = [(await http.get(PATH, headers=bob)).status_code for _ in range(4)]
        # A new token for the same subject shares the subject's bucket.
        again = await http.get(PATH, headers=bearer(hs_token(claims_for("alice", ttl=999))))
    assert first == [200, 200, 200, 429]
    assert second == [200, 200, 200, 429]
    assert_error_shape(again, 429, "rate_limited")
    assert again.headers["ratelimit-policy"] == '"user";q=3;w=3600'


async def test_an_api_key_still_works_and_neither_is_refused(client_factory: Any) -> None:
    async with client_factory(api_keys=f"ci:{KEY}") as http:
        without_credentials(http)
        by_key = await http.get("/api/v1/auth/me", headers={"X-API-Key": KEY})
        by_token = await http.get("/api/v1/auth/me", headers=bearer(hs_token()))
        bad_key = await http.get(PATH, headers={"X-API-Key": "wrong-key-wrong-key"})
        neither = await http.get(PATH)
        bad_token = await http.get(PATH, headers={**bearer("x.y.z"), "X-API-Key": KEY})
    assert by_key.json() == {"kind": "api_key", "id": "ci", "claims": None}
    assert by_token.json()["kind"] == "user"
    assert_error_shape(bad_key, 401, "unauthorized")
    body = assert_error_shape(neither, 401, "unauthorized")
    assert "X-API-Key" in body["message"]
    assert neither.headers.get_list("www-authenticate") == ["Bearer", 'ApiKey header="X-API-Key"']
    # A token that was sent is judged, whatever else came with it.
    assert_error_shape(bad_token, 401, "unauthorized")


async def test_other_transports_authenticate_the_same_way(client_factory: Any) -> None:
    async with client_factory(api_keys=f"ci:{KEY}") as http:
        authenticators = http._transport.app.state.wiring.authenticators
    # A bearer JWT is the JWT authenticator's; any other bearer value an API key.
    assert [a.name for a in authenticators] == ["jwt", "api_key"]
    jwt_authenticator = authenticators[0]
    assert jwt_authenticator.required is True

    user = await authenticate(authenticators, {"authorization": f"Bearer {hs_token()}"})
    assert user is not None
    assert (user.kind, user.id) == ("user", "alice")
    key = await authenticate(authenticators, {"x-api-key": KEY})
    assert key is not None
    assert key.kind == "api_key"
    bearer_key = await authenticate(authenticators, {"authorization": f"Bearer {KEY}"})
    assert bearer_key is not None
    assert (bearer_key.kind, bearer_key.id) == ("api_key", "ci")
    for metadata, message in [
        ({}, "required"),
        ({"authorization": "Bearer garbage.not.a-jwt"}, "Invalid token."),
        # Not shaped like a JWT: an API key, and not a valid one.
        ({"authorization": "Bearer garbage"}, "not valid"),
        ({"authorization": f"Bearer {hs_token(claims_for(exp=now() - 3600))}"}, "expired"),
        ({"authorization": "Bearer " + hs_token(claims_for(typ="refresh"))}, "Invalid token."),
    ]:
        with pytest.raises(AuthenticationError) as refused:
            await authenticate(authenticators, metadata)
        assert message in refused.value.message


async def test_refused_tokens_spend_the_address_budget_then_get_429(client_factory: Any) -> None:
    async with client_factory(rate_limit_ip="2/hour", rate_limit_user="100/hour") as http:
        without_credentials(http)
        forged = [
            (await http.get(PATH, headers=bearer(hs_token(secret="x" * 32)))).status_code
            for _ in range(3)
        ]
        valid = await http.get(PATH, headers=bearer(hs_token()))
    assert forged == [401, 401, 429]
    assert valid.status_code == 200
