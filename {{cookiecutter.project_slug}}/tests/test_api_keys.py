"""API keys: required on /api/v1 when configured, stored only as digests, with tiers."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import openai
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from {{cookiecutter.package_name}}.auth.api_keys import ApiKeyStore
from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.middleware.api_key import ApiKeyMiddleware
from {{cookiecutter.package_name}}.settings import ConfigurationError, load_settings

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from stack_helpers import (
    add_test_routes,
    assert_error_shape,
    assert_security_headers,
    captured_logs,
    serving,
    without_credentials,
)

ALICE = "alice-0123456789abcdef"  # gold tier
BOB = "bob-fedcba9876543210xyz"  # no tier: RATE_LIMIT_USER
CAROL = "carol-revoked-000000000"
PEPPER = "test-pepper-not-for-production"
KEYS = {
    "api_keys": f"alice:{ALICE}:gold,bob:{BOB},carol:{CAROL}",
    "api_key_revoked": "carol",
    "api_key_tiers": "gold=5/hour",
    "api_key_pepper": PEPPER,
    "rate_limit_user": "3/hour",
    "rate_limit_ip": "100/hour",
    "log_format": "json",
}


@pytest.fixture
async def keyed(make_settings: SettingsFactory) -> Any:
    # API keys alone: without the credentials test clients send by default.
    async with running(add_test_routes(create_app(make_settings(**KEYS)))) as http:
        yield without_credentials(http)


def key(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


async def test_good_key_passes_and_sets_the_principal(keyed: httpx.AsyncClient) -> None:
    response = await keyed.get("/api/v1/test/whoami", headers=key(BOB))
    assert response.status_code == 200
    assert response.json()["principal"] == "bob"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "required"),
        (key("wrong-key-0000000000000"), "not valid"),
        (key(ALICE + "x"), "not valid"),
        (key(""), "not valid"),
        (key(CAROL), "revoked"),
    ],
)
async def test_missing_bad_and_revoked_keys_are_401(
    keyed: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    response = await keyed.get("/api/v1/models", headers=headers)
    body = assert_error_shape(response, 401, "unauthorized")
    assert message in body["message"]
    assert "ApiKey" in response.headers["www-authenticate"]
    assert_security_headers(response)


@pytest.mark.parametrize("query", [f"api_key={BOB}", f"key={BOB}", "API_KEY=x"])
async def test_key_in_the_query_string_is_refused(keyed: httpx.AsyncClient, query: str) -> None:
    # Refused even with a valid header: the URL already leaked the key into logs.
    response = await keyed.get(f"/api/v1/models?{query}", headers=key(BOB))
    body = assert_error_shape(response, 400, "api_key_in_url")
    assert "header" in body["message"]


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json"]
)
async def test_health_metrics_and_docs_need_no_key(keyed: httpx.AsyncClient, path: str) -> None:
    assert (await keyed.get(path)).status_code == 200


async def test_tiers_and_per_key_buckets(keyed: httpx.AsyncClient) -> None:
    gold = [await keyed.get("/api/v1/models", headers=key(ALICE)) for _ in range(6)]
    assert [r.status_code for r in gold] == [200] * 5 + [429]
    assert gold[0].headers["ratelimit-policy"] == '"gold";q=5;w=3600'
    # Bob is limited by RATE_LIMIT_USER in his own bucket, from the same address.
    plain = [await keyed.get("/api/v1/models", headers=key(BOB)) for _ in range(4)]
    assert [r.status_code for r in plain] == [200] * 3 + [429]
    assert plain[0].headers["ratelimit-policy"] == '"user";q=3;w=3600'


async def test_logs_name_the_key_but_never_show_it(make_settings: SettingsFactory) -> None:
    app = add_test_routes(create_app(make_settings(**KEYS)))
    with captured_logs() as logs:
        async with running(app) as http:
            without_credentials(http)
            await http.get("/api/v1/test/whoami", headers=key(ALICE))
            await http.get("/api/v1/models", headers=key("zzzz-unknown-key-1234567"))
            await http.get("/api/v1/models", headers=key(CAROL))
    ok, unknown, _ = logs.events("request")
    assert ok["principal"] == "alice"
    assert unknown["principal"] is None
    unknown_line, revoked_line = logs.events("api_key.rejected")
    assert unknown_line["reason"] == "unknown"
    assert unknown_line["key_prefix"] == "zzzz..."
    assert revoked_line["reason"] == "revoked"
    assert revoked_line["key_id"] == "carol"
    everything = json.dumps(logs.lines)
    for secret in (ALICE, CAROL, "zzzz-unknown-key-1234567"):
        assert secret not in everything


async def test_only_digests_are_kept(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(**KEYS))
    async with running(app) as http:
        await http.get("/healthz")
    layer: Any = app.middleware_stack
    while not isinstance(layer, ApiKeyMiddleware):
        layer = layer.app
    store = layer.store
    assert isinstance(store, ApiKeyStore)
    digest = hmac.new(PEPPER.encode(), BOB.encode(), hashlib.sha256).digest()
    stored = {item.id: item for item in store._keys}
    assert stored["bob"].digest == digest
    assert stored["alice"].tier == "gold"
    assert stored["carol"].revoked
    assert all(BOB not in repr(value) for value in vars(layer).values())
    assert BOB not in repr(store._keys)
    assert BOB not in repr(app.state.wiring.settings)


async def test_websocket_handshake_needs_a_key(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(**KEYS))
    async with serving(app) as server:
        url = f"{server.ws_url}/api/v1/chat/ws"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url, proxy=None):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body or b"")["code"] == "unauthorized"
        async with websockets.connect(url, additional_headers=key(BOB), proxy=None) as ws:
            assert ws.response is not None
            assert ws.response.headers["ratelimit-policy"] == '"user";q=3;w=3600'


async def test_refused_keys_spend_the_address_budget_then_get_429(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(**{**KEYS, "rate_limit_ip": "3/hour"}))
    async with running(add_test_routes(app)) as http:
        without_credentials(http)
        guesses = [
            await http.get("/api/v1/models", headers=key(f"guess-{n:016d}")) for n in range(3)
        ]
        missing = await http.get("/api/v1/models")
        revoked = await http.get("/api/v1/models", headers=key(CAROL))
        # A good key from the same address is limited by its own quota only.
        good = await http.get("/api/v1/test/whoami", headers=key(BOB))
    assert [response.status_code for response in guesses] == [401, 401, 401]
    assert guesses[-1].headers.get("retry-after") is None
    for refused in (missing, revoked):
        body = assert_error_shape(refused, 429, "rate_limited")
        assert body["message"].startswith("Too many requests; retry after ")
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-policy"] == '"ip";q=3;w=3600'
        assert_security_headers(refused)
    assert good.status_code == 200
    assert good.headers["ratelimit-policy"] == '"user";q=3;w=3600'


async def test_a_refused_websocket_key_is_counted_too(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(**{**KEYS, "rate_limit_ip": "1/hour"}))
    async with serving(app) as server:
        url = f"{server.ws_url}/api/v1/chat/ws"
        statuses = []
        for _ in range(2):
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(url, additional_headers=key("nope"), proxy=None):
                    pass
            statuses.append(refused.value.response.status_code)
    assert statuses == [401, 429]
    assert json.loads(refused.value.response.body or b"")["code"] == "rate_limited"


async def test_without_configured_keys_the_api_is_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/models")).status_code == 200
    assert (await client.get("/api/v1/models?key=whatever")).status_code == 200


def test_a_key_tier_must_be_defined() -> None:
    with pytest.raises(
        ConfigurationError, match="API_KEY_TIERS: API key 'alice' has undefined tier 'platinum'"
    ):
        load_settings(
            _env_file=None, api_keys=f"alice:{ALICE}:platinum", api_key_tiers="gold=5/hour"
        )


async def test_a_bearer_key_works_as_openai_clients_send_it(keyed: httpx.AsyncClient) -> None:
    bearer = await keyed.get("/api/v1/test/whoami", headers={"Authorization": f"Bearer {BOB}"})
    wrong = await keyed.get(
        "/api/v1/test/whoami", headers={"Authorization": "Bearer nope-nope-nope"}
    )
    neither = await keyed.get("/api/v1/test/whoami")
    assert bearer.status_code == 200
    assert bearer.json()["principal"] == "bob"
    assert wrong.status_code == 401
    assert neither.status_code == 401
    assert "bearer" in neither.json()["message"].lower()


async def test_the_openai_sdk_authenticates_with_its_api_key(live_server: Any) -> None:
    server = await live_server(**KEYS)
    url = f"{server.url}/api/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key=ALICE, max_retries=0) as client:
        models = await client.models.list()
    async with openai.AsyncOpenAI(base_url=url, api_key="wrong-key-0000000", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(
                model="fake-echo-1", messages=[{"role": "user", "content": "hi"}]
            )
    assert [model.id for model in models.data] == ["fake-echo-1"]
    assert caught.value.response.json()["error"]["type"] == "authentication_error"
