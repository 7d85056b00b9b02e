"""Issuing tokens: the OAuth2 password flow, refresh rotation and reuse detection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import TEST_JWT_SECRET
from jwt_helpers import add_user, bearer
from sse_client import iter_events
from stack_helpers import assert_error_shape, without_credentials

PASSWORD = "correct horse battery staple"
CHAT = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3}


@pytest.fixture
async def users_file(tmp_path: Path) -> str:
    path = str(tmp_path / "users.db")
    await add_user(path, "alice", PASSWORD)
    await add_user(path, "bob", PASSWORD + "!")
    return path


async def sign_in(http: httpx.AsyncClient, name: str = "alice", password: str = PASSWORD) -> Any:
    return await http.post("/api/v1/auth/token", data={"username": name, "password": password})


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_password_flow_end_to_end(live_server: Any, users_file: str) -> None:
    server = await live_server(jwt_users_file=users_file)
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await sign_in(http)
        assert response.status_code == 200
        issued = response.json()
        assert issued["token_type"] == "bearer"
        assert (issued["expires_in"], issued["refresh_expires_in"]) == (900, 14 * 86_400)
        headers = bearer(issued["access_token"])
        async with http.stream("POST", "/api/v1/chat/stream", json=CHAT, headers=headers) as r:
            assert r.status_code == 200
            kinds = [event.event async for event in iter_events(r)]
        assert kinds == ["token", "token", "token", "usage", "done"]
        me = (await http.get("/api/v1/auth/me", headers=headers)).json()
    assert (me["kind"], me["id"], me["claims"]["typ"]) == ("user", "alice", "access")


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("alice", "wrong password"),
        ("nobody", PASSWORD),
        ("bob", PASSWORD),
        ("no such name!", PASSWORD),
    ],
)
async def test_wrong_credentials_are_one_401(
    client_factory: Any, users_file: str, name: str, password: str
) -> None:
    async with client_factory(jwt_users_file=users_file) as http:
        response = await sign_in(without_credentials(http), name, password)
    body = assert_error_shape(response, 401, "unauthorized")
    # The same answer whether the user exists or not.
    assert body["message"] == "Incorrect username or password."
    assert response.headers["www-authenticate"] == "Bearer"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client_factory: Any, users_file: str
) -> None:
    async with client_factory(jwt_users_file=users_file) as http:
        first = (await sign_in(http)).json()
        rotated = await refresh(http, first["refresh_token"])
        assert rotated.status_code == 200
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert (await http.get("/api/v1/models", headers=bearer(second["access_token"]))).is_success

        # The first refresh token again: someone kept a copy.
        reused = await refresh(http, first["refresh_token"])
        body = assert_error_shape(reused, 401, "unauthorized")
        assert "already used" in body["message"]
        # ...so the whole family is gone, the newest token included.
        assert_error_shape(await refresh(http, second["refresh_token"]), 401, "unauthorized")

        # Other sign-ins are separate families and keep working.
        other = (await sign_in(http, "bob", PASSWORD + "!")).json()
        assert (await refresh(http, other["refresh_token"])).status_code == 200
        assert (await sign_in(http)).status_code == 200


async def test_two_concurrent_uses_of_one_refresh_token(
    client_factory: Any, users_file: str
) -> None:
    async with client_factory(jwt_users_file=users_file) as http:
        token = (await sign_in(http)).json()["refresh_token"]
        responses = await asyncio.gather(refresh(http, token), refresh(http, token))
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 401]
        winner = next(r for r in responses if r.status_code == 200).json()
        # The loser was a reuse: the winner's family is revoked too.
        assert (await refresh(http, winner["refresh_token"])).status_code == 401


async def test_access_and_refresh_tokens_are_not_interchangeable(
    client_factory: Any, users_file: str
) -> None:
    async with client_factory(jwt_users_file=users_file) as http:
        issued = (await sign_in(http)).json()
        as_access = await http.get("/api/v1/models", headers=bearer(issued["refresh_token"]))
        as_refresh = await refresh(http, issued["access_token"])
        garbage = await refresh(http, "not-a-token")
    assert_error_shape(as_access, 401, "unauthorized")
    assert_error_shape(as_refresh, 401, "unauthorized")
    assert_error_shape(garbage, 401, "unauthorized")


async def test_issued_tokens_carry_typ_and_the_configured_iss_and_aud(
    client_factory: Any, users_file: str
) -> None:
    settings = {
        "jwt_users_file": users_file,
        "jwt_issuer": "https://svc.example",
        "jwt_audience": "svc",
        "jwt_access_ttl_seconds": 60,
    }
    async with client_factory(**settings) as http:
        issued = (await sign_in(http)).json()
        assert (await http.get("/api/v1/models", headers=bearer(issued["access_token"]))).is_success
    options: Any = {"verify_aud": False}
    access = jwt.decode(issued["access_token"], TEST_JWT_SECRET, ["HS256"], options=options)
    refresh_claims = jwt.decode(
        issued["refresh_token"], TEST_JWT_SECRET, ["HS256"], options=options
    )
    assert (access["typ"], refresh_claims["typ"]) == ("access", "refresh")
    assert access["exp"] - access["iat"] == 60
    assert (access["iss"], access["aud"], access["sub"]) == ("https://svc.example", "svc", "alice")
    assert refresh_claims["fam"] and refresh_claims["jti"] != access["jti"]


async def test_openapi_shows_the_bearer_scheme_on_protected_routes(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    paths = schema["paths"]
    requirement: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}]
    assert paths["/api/v1/chat/stream"]["post"]["security"] == requirement
    assert paths["/api/v1/models"]["get"]["security"] == requirement
    assert paths["/api/v1/auth/me"]["get"]["security"] == requirement
    assert "security" not in paths["/api/v1/auth/token"]["post"]
    assert "security" not in paths["/api/v1/auth/refresh"]["post"]
    assert "security" not in paths["/healthz"]["get"]
