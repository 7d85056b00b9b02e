"""Security headers on every response: successes, every kind of error, streams and the docs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from {{cookiecutter.package_name}}.main import create_app

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import AUTH_HEADERS, SettingsFactory, running
from stack_helpers import (
    CHAT,
    SECURITY_HEADERS,
    add_test_routes,
    assert_error_shape,
    assert_security_headers,
)

GOOD_KEY = "svc:0123456789abcdef0123"

# (settings, requests to make, expected final status, expected error code)
CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], int, str | None]] = {
    "200": ({}, [{"method": "GET", "url": "/api/v1/models"}], 200, None),
    "401": (
        {"api_keys": GOOD_KEY},
        # The test client's default credentials, if any, replaced by invalid ones.
        [
            {
                "method": "GET",
                "url": "/api/v1/models",
                "headers": dict.fromkeys(AUTH_HEADERS, "not valid"),
            }
        ],
        401,
        "unauthorized",
    ),
    "404": ({}, [{"method": "GET", "url": "/no/such/page"}], 404, "not_found"),
    "413": (
        {"max_request_size": 1024},
        [{"method": "POST", "url": "/api/v1/chat/stream", "content": b"x" * 2048}],
        413,
        "request_too_large",
    ),
    "422": (
        {},
        [{"method": "POST", "url": "/api/v1/chat/stream", "json": {}}],
        422,
        "validation_error",
    ),
    "429": (
        {"rate_limit_ip": "1/hour", "rate_limit_user": "1/hour"},
        [{"method": "GET", "url": "/api/v1/models"}] * 2,
        429,
        "rate_limited",
    ),
    "500": ({}, [{"method": "GET", "url": "/api/v1/test/boom"}], 500, "internal_error"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_headers_on_every_status(make_settings: SettingsFactory, case: str) -> None:
    overrides, requests, status, code = CASES[case]
    app = add_test_routes(create_app(make_settings(**overrides)))
    async with running(app) as http:
        for request in requests:
            response = await http.request(**request)
    assert response.status_code == status
    assert_security_headers(response)
    assert "strict-transport-security" not in response.headers
    if code is not None:
        assert_error_shape(response, status, code)


async def test_sse_stream_keeps_its_own_cache_control(client: httpx.AsyncClient) -> None:
    async with client.stream("POST", "/api/v1/chat/stream", json=CHAT) as response:
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert_security_headers(response, cache_control="no-cache")
    assert b"event: done" in body


async def test_headers_on_streamed_completion(client: httpx.AsyncClient) -> None:
    body = {"model": "fake-echo-1", "stream": True, **CHAT}
    async with client.stream("POST", "/api/v1/chat/completions", json=body) as response:
        await response.aread()
    assert response.status_code == 200
    assert_security_headers(response, cache_control="no-cache")


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_get_a_csp_that_lets_them_load(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    # The page really loads its assets from the origin the policy allows.
    assert "https://cdn.jsdelivr.net/" in response.text


async def test_openapi_json_gets_the_strict_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert (
        response.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
    )


async def test_hsts_only_in_production(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        environment="production",
        llm_provider="openai",
        llm_base_url="http://127.0.0.1:9/v1",
        hsts_max_age=31_536_000,
    )
    async with running(create_app(settings)) as http:
        response = await http.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert_security_headers(response)


async def test_can_be_turned_off(make_settings: SettingsFactory) -> None:
    async with running(create_app(make_settings(security_headers=False))) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    for name in (*SECURITY_HEADERS, "permissions-policy", "cache-control"):
        assert name not in response.headers
    # The request ID is not a security header and stays.
    assert response.headers["x-request-id"]
