"""Production: no introspection, no IDE, no hints, and no internals in error messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from {{cookiecutter.package_name}}.main import create_app

from conftest import AUTH_HEADERS
from graphql_helpers import PATH, SERVICE_INFO, error_codes, error_messages, graphql
from stack_helpers import SECRET_DETAIL

INTROSPECTION = "query { __schema { queryType { name } } }"
# Production refuses the fake provider; nothing here generates, so no upstream is needed.
UPSTREAM = {"llm_provider": "openai", "llm_base_url": "http://127.0.0.1:9/v1"}


@asynccontextmanager
async def in_process(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The whole middleware stack in process. No lifespan: production settings would
    make other features' start-up hooks (servers, backends) reach for real resources."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=AUTH_HEADERS
    ) as client:
        yield client


@pytest.fixture
def production_app(make_settings: Callable[..., Any]) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        settings = make_settings(**{**UPSTREAM, "rate_limit_enabled": False, **overrides})
        # Switched after validation: what else production demands of the settings
        # (secrets, ports of other features) is for their own tests.
        return create_app(settings.model_copy(update={"environment": "production"}))

    return build


async def test_introspection_is_refused_in_production(production_app: Any) -> None:
    async with in_process(production_app()) as http:
        _, body = await graphql(http, INTROSPECTION)
        _, ordinary = await graphql(http, SERVICE_INFO)
    assert body.get("data") is None
    assert set(error_codes(body)) == {"bad_request"}
    assert "introspection has been disabled" in error_messages(body)
    assert ordinary["data"]["serviceInfo"]["environment"] == "production"


async def test_introspection_works_elsewhere(make_settings: Callable[..., Any]) -> None:
    async with in_process(create_app(make_settings(rate_limit_enabled=False))) as http:
        _, body = await graphql(http, INTROSPECTION)
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}


async def test_no_ide_and_no_field_suggestions_in_production(production_app: Any) -> None:
    async with in_process(production_app()) as http:
        page = await http.get(PATH, headers={"accept": "text/html"})
        _, body = await graphql(http, "query { serviceInf { name } }")
    assert page.status_code == 404
    assert "Did you mean" not in error_messages(body)


async def test_unexpected_errors_are_masked_but_keep_their_code(
    production_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = production_app()

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(SECRET_DETAIL)

    # A fault the resolver does not expect, from the core it calls.
    monkeypatch.setattr(app.state.wiring.core, "complete", broken)
    mutation = 'mutation { chat(input: {messages: [{role: user, content: "hi"}]}) { text } }'
    async with in_process(app) as http:
        response, body = await graphql(http, mutation)
    assert response.status_code == 200
    assert SECRET_DETAIL not in response.text
    (error,) = body["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {
        "code": "internal_error",
        "request_id": response.headers["x-request-id"],
    }


async def test_expected_errors_are_not_masked_in_production(production_app: Any) -> None:
    mutation = "mutation { chat(input: {messages: []}) { text } }"
    async with in_process(production_app()) as http:
        _, body = await graphql(http, mutation)
    assert error_codes(body) == ["validation_error"]
    assert "messages:" in error_messages(body)
