"""Asymmetric tokens checked against a real JWKS server: keys, refetches, failures."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

# isort: split
# Test helpers come after the package, whatever the package is named.
from jwt_helpers import (
    KeyPair,
    KeyServer,
    bearer,
    claims_for,
    closed_port_url,
    forge,
    forge_hmac,
    hs_token,
)
from stack_helpers import assert_error_shape

PATH = "/api/v1/models"
# Key generation takes a while: once per module.
RSA_KEY = KeyPair("rsa-1")
ROTATED_KEY = KeyPair("rsa-2")
STRANGER = KeyPair("stranger")
EC_KEY = KeyPair("ec-1", "ES256")
ED_KEY = KeyPair("ed-1", "EdDSA")


def keyed_settings(server_url: str, **overrides: Any) -> dict[str, Any]:
    return {"jwt_algorithms": "RS256", "jwt_jwks_url": server_url, **overrides}


async def test_tokens_signed_by_the_key_set_pass(client_factory: Any) -> None:
    with KeyServer(RSA_KEY, EC_KEY, ED_KEY) as server:
        settings = keyed_settings(server.url, jwt_algorithms="RS256,ES256,EdDSA")
        async with client_factory(**settings) as http:
            for key in (RSA_KEY, EC_KEY, ED_KEY):
                response = await http.get(PATH, headers=bearer(key.sign()))
                assert response.status_code == 200, key.algorithm
            me = await http.get("/api/v1/auth/me", headers=bearer(RSA_KEY.sign(claims_for("bo"))))
        assert me.json()["id"] == "bo"
        # Fetched once at start-up, then served from the cache.
        assert server.hits == 1


@pytest.mark.parametrize("algorithms", ["RS256", "RS256,HS256"])
async def test_hs256_signed_with_the_public_key_is_refused(
    client_factory: Any, algorithms: str
) -> None:
    """Algorithm confusion: the public key's PEM used as an HMAC secret."""
    token = forge_hmac(
        {"alg": "HS256", "typ": "JWT", "kid": RSA_KEY.kid}, claims_for(), RSA_KEY.public_pem
    )
    with KeyServer(RSA_KEY) as server:
        async with client_factory(**keyed_settings(server.url, jwt_algorithms=algorithms)) as http:
            response = await http.get(PATH, headers=bearer(token))
            # With HS256 allowed too, HS256 tokens are checked with JWT_SECRET only.
            ours = await http.get(PATH, headers=bearer(hs_token()))
    assert_error_shape(response, 401, "unauthorized")
    assert ours.status_code == (200 if "HS256" in algorithms else 401)


async def test_a_key_of_another_type_is_not_used(client_factory: Any) -> None:
    # ES256 claimed, but the kid names the RSA key.
    token = forge({"alg": "ES256", "kid": RSA_KEY.kid}, claims_for(), b"x" * 64)
    with KeyServer(RSA_KEY) as server:
        settings = keyed_settings(server.url, jwt_algorithms="RS256,ES256")
        async with client_factory(**settings) as http:
            response = await http.get(PATH, headers=bearer(token))
    assert_error_shape(response, 401, "unauthorized")


async def test_unknown_kids_do_not_make_the_service_hammer_the_provider(
    client_factory: Any,
) -> None:
    with KeyServer(RSA_KEY) as server:
        async with client_factory(**keyed_settings(server.url)) as http:
            tokens = [STRANGER.sign(kid=f"made-up-{n}") for n in range(10)]
            responses = await asyncio.gather(*(http.get(PATH, headers=bearer(t)) for t in tokens))
        assert {r.status_code for r in responses} == {401}
        # JWT_JWKS_REFRESH_SECONDS (60) has not passed since the start-up fetch.
        assert server.hits == 1


async def test_a_new_key_is_fetched_once_then_refetches_wait(client_factory: Any) -> None:
    with KeyServer(RSA_KEY) as server:
        async with client_factory(
            **keyed_settings(server.url, jwt_jwks_refresh_seconds=0.5)
        ) as http:
            assert server.hits == 1
            server.publish(RSA_KEY, ROTATED_KEY)
            await asyncio.sleep(0.6)
            rotated = [ROTATED_KEY.sign(claims_for(f"u{n}")) for n in range(5)]
            responses = await asyncio.gather(*(http.get(PATH, headers=bearer(t)) for t in rotated))
            assert [r.status_code for r in responses] == [200] * 5
            # Five requests with the new kid, one fetch between them.
            assert server.hits == 2
            unknown = await http.get(PATH, headers=bearer(STRANGER.sign()))
            assert unknown.status_code == 401
            assert server.hits == 2


async def test_jku_x5u_and_jwk_headers_are_never_followed(client_factory: Any) -> None:
    with KeyServer(RSA_KEY) as server, KeyServer(STRANGER) as attacker:
        tokens = [
            STRANGER.sign(jku=attacker.url),
            STRANGER.sign(x5u=attacker.url),
            STRANGER.sign(jwk=STRANGER.jwk),
            # The real kid, the attacker's signature and key.
            STRANGER.sign(kid=RSA_KEY.kid, jwk=STRANGER.jwk, jku=attacker.url),
        ]
        async with client_factory(**keyed_settings(server.url)) as http:
            responses = [await http.get(PATH, headers=bearer(token)) for token in tokens]
    for response in responses:
        assert_error_shape(response, 401, "unauthorized")
    assert attacker.hits == 0


async def test_an_unreachable_key_set_is_503_and_not_ready(client_factory: Any) -> None:
    async with client_factory(**keyed_settings(closed_port_url())) as http:
        response = await http.get(PATH, headers=bearer(RSA_KEY.sign()))
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
    body = assert_error_shape(response, 503, "unavailable")
    assert "try again" in body["message"]
    assert response.headers["retry-after"] == "5"
    assert ready.status_code == 503
    assert "jwks" in ready.json()["message"]
    assert alive.status_code == 200


async def test_an_erroring_key_set_is_503(client_factory: Any) -> None:
    with KeyServer(RSA_KEY) as server:
        server.status = 500
        async with client_factory(**keyed_settings(server.url)) as http:
            response = await http.get(PATH, headers=bearer(RSA_KEY.sign()))
    assert_error_shape(response, 503, "unavailable")


async def test_a_slow_key_set_delays_no_other_request_and_recovers(live_server: Any) -> None:
    with KeyServer(RSA_KEY) as server:
        server.delay = 10
        started = time.monotonic()
        service = await live_server(
            **keyed_settings(
                server.url,
                jwt_algorithms="RS256,HS256",
                jwt_jwks_timeout_seconds=0.3,
                jwt_jwks_refresh_seconds=0.2,
            )
        )
        # Start-up waited for the first fetch no longer than its timeout.
        assert time.monotonic() - started < 3
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as http:

            async def timed(headers: dict[str, str], path: str = PATH) -> tuple[int, float]:
                begin = time.monotonic()
                response = await http.get(path, headers=headers)
                return response.status_code, time.monotonic() - begin

            await asyncio.sleep(0.25)
            slow = [asyncio.create_task(timed(bearer(RSA_KEY.sign()))) for _ in range(3)]
            await asyncio.sleep(0.02)
            fast = await timed(bearer(hs_token()))
            health = await timed({}, "/healthz")
            results = await asyncio.gather(*slow)
            assert fast[0] == 200
            assert health[0] == 200
            assert fast[1] < 0.25
            assert {status for status, _ in results} == {503}
            assert all(seconds < 2 for _, seconds in results)
            assert (await http.get("/readyz")).status_code == 503

            # The provider answers again: the next refetch loads the keys.
            server.delay = 0
            for _ in range(100):
                response = await http.get(PATH, headers=bearer(RSA_KEY.sign()))
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert response.status_code == 200
            assert (await http.get("/readyz")).status_code == 200


async def test_readiness_reports_the_key_set_without_fetching(client_factory: Any) -> None:
    with KeyServer(RSA_KEY) as server:
        async with client_factory(**keyed_settings(server.url)) as http:
            for _ in range(3):
                ready = await http.get("/readyz")
                assert ready.status_code == 200
                assert ready.json()["checks"] == {"provider": "ok", "jwks": "ok"}
        assert server.hits == 1
