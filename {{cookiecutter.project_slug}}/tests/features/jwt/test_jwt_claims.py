"""Bearer tokens on /api/v1 through the whole stack: what passes, and every way to fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import TEST_JWT_SECRET
from jwt_helpers import bearer, claims_for, forge, forge_hmac, hs_token, now
from stack_helpers import assert_error_shape, captured_logs, without_credentials

AUDIENCE = "streaming-api"
ISSUER = "https://idp.example.com"
PATH = "/api/v1/models"
SECRET = TEST_JWT_SECRET.encode()


def assert_refused(response: httpx.Response, message: str = "Invalid token.") -> None:
    body = assert_error_shape(response, 401, "unauthorized")
    assert body["message"] == message
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_valid_token_passes_and_its_claims_reach_the_app(client_factory: Any) -> None:
    token = hs_token(claims_for("alice", role="admin"))
    async with client_factory() as http:
        assert (await http.get(PATH, headers=bearer(token))).status_code == 200
        me = await http.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    identity = me.json()
    assert (identity["kind"], identity["id"]) == ("user", "alice")
    assert identity["claims"]["role"] == "admin"


async def test_no_credentials_is_401_with_a_bearer_challenge(client_factory: Any) -> None:
    async with client_factory() as http:
        without_credentials(http)
        missing = await http.get(PATH)
        basic = await http.get(PATH, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    for response in (missing, basic):
        body = assert_error_shape(response, 401, "unauthorized")
        assert "bearer token is required" in body["message"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_health_metrics_docs_and_token_routes_stay_open(client_factory: Any) -> None:
    async with client_factory() as http:
        without_credentials(http)
        for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
            assert (await http.get(path)).status_code == 200, path
        # Reaches the route (a 422 for the missing form), not a 401 from the JWT layer.
        assert (await http.post("/api/v1/auth/token")).status_code == 422
        assert (await http.post("/api/v1/auth/refresh", json={})).status_code == 422


def signed_with_none(alg: str) -> Callable[[], str]:
    return lambda: forge({"alg": alg, "typ": "JWT"}, claims_for())


BAD_TOKENS: dict[str, Callable[[], str]] = {
    "alg none": signed_with_none("none"),
    "alg None": signed_with_none("None"),
    "alg NONE": signed_with_none("NONE"),
    "alg none with a signature": lambda: forge({"alg": "none"}, claims_for(), b"sig"),
    "alg HS512 not allowed": lambda: forge_hmac({"alg": "HS512"}, claims_for(), SECRET, "sha512"),
    "other secret": lambda: hs_token(secret="another-secret-of-the-same-length-0123456789"),
    "tampered claims": lambda: tamper(hs_token(claims_for("alice")), claims_for("root")),
    "nbf in the future": lambda: hs_token(claims_for(nbf=now() + 120)),
    "iat in the future": lambda: hs_token(claims_for(iat=now() + 120)),
    "no exp": lambda: hs_token({"sub": "alice", "iat": now()}),
    "no sub": lambda: hs_token({"exp": now() + 60}),
    "empty sub": lambda: hs_token(claims_for("")),
    "numeric sub": lambda: hs_token({"sub": 42, "exp": now() + 60}),
    "refresh token": lambda: hs_token(claims_for(typ="refresh", jti="j", fam="f")),
    "id token": lambda: hs_token(claims_for(typ="id")),
    "kid not a string": lambda: forge_hmac({"alg": "HS256", "kid": 7}, claims_for(), SECRET),
    "crit header": lambda: hs_token(headers={"crit": ["exp"], "exp": 1}),
}


def tamper(token: str, claims: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{forge({}, claims).split('.')[1]}.{signature}"


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_tokens_are_401_never_500(client_factory: Any, case: str) -> None:
    async with client_factory() as http:
        response = await http.get(PATH, headers=bearer(BAD_TOKENS[case]()))
    assert_refused(response)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


MALFORMED = [
    "",
    "abc",
    "a.b",
    "a.b.c",
    "a.b.c.d.e",
    "!!!.###.$$$",
    "\u00e9t\u00e9.x.y",
    "e30.e30.",
    "W10.e30.c2ln",
    forge({"alg": "HS256"}, {}).replace(".", ".!", 1),
]


@pytest.mark.parametrize("token", MALFORMED)
async def test_malformed_tokens_are_401(client_factory: Any, token: str) -> None:
    async with client_factory() as http:
        response = await http.get(PATH, headers={"Authorization": f"Bearer {token}".encode()})
    assert_refused(response)


async def test_expiry_is_checked_with_the_leeway(client_factory: Any) -> None:
    async with client_factory(jwt_leeway_seconds=30) as http:
        late = await http.get(PATH, headers=bearer(hs_token(claims_for(exp=now() - 60))))
        within = await http.get(PATH, headers=bearer(hs_token(claims_for(exp=now() - 10))))
        early = await http.get(PATH, headers=bearer(hs_token(claims_for(nbf=now() + 10))))
    # A correctly signed token that expired says so, so that the client refreshes.
    assert_refused(late, "The token has expired.")
    assert within.status_code == 200
    assert early.status_code == 200


@pytest.mark.parametrize(
    ("audience", "status"),
    [
        (AUDIENCE, 200),
        (["other", AUDIENCE], 200),
        ("other", 401),
        (AUDIENCE + "-x", 401),
        ("streaming", 401),
        (None, 401),
    ],
)
async def test_audience_must_match_exactly(
    client_factory: Any, audience: str | list[str] | None, status: int
) -> None:
    claims = claims_for() if audience is None else claims_for(aud=audience)
    async with client_factory(jwt_audience=AUDIENCE) as http:
        response = await http.get(PATH, headers=bearer(hs_token(claims)))
    assert response.status_code == status


@pytest.mark.parametrize(
    ("issuer", "status"),
    [
        (ISSUER, 200),
        (ISSUER + ".evil.example", 401),
        (ISSUER + "/", 401),
        ("https://idp.example", 401),
        ("idp.example.com", 401),
        ("https://evil.example/" + ISSUER, 401),
        (None, 401),
    ],
)
async def test_issuer_must_match_exactly(
    client_factory: Any, issuer: str | None, status: int
) -> None:
    claims = claims_for() if issuer is None else claims_for(iss=issuer)
    async with client_factory(jwt_issuer=ISSUER) as http:
        response = await http.get(PATH, headers=bearer(hs_token(claims)))
    assert response.status_code == status


async def test_tokens_over_8_kib_are_refused_before_decoding(client_factory: Any) -> None:
    near = hs_token(claims_for(pad="x" * 5000))
    huge = hs_token(claims_for(pad="x" * 9000))
    assert len(near) < 8192 < len(huge)
    async with client_factory(log_format="json") as http:
        with captured_logs() as logs:
            fits = await http.get(PATH, headers=bearer(near))
            refused = await http.get(PATH, headers=bearer(huge))
    assert fits.status_code == 200
    assert_refused(refused)
    (rejected,) = logs.events("jwt.rejected")
    assert rejected["reason"] in ("token too large", "authorization header too large")


async def test_keycloak_style_typ_and_no_typ_are_access_tokens(client_factory: Any) -> None:
    async with client_factory() as http:
        for claims in (claims_for(typ="Bearer"), claims_for(typ="access"), claims_for()):
            assert (await http.get(PATH, headers=bearer(hs_token(claims)))).status_code == 200
