"""Probes, metrics, the deprecated route and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx

from {{cookiecutter.package_name}}.chat.providers.base import LLMProvider

CHAT = {"messages": [{"role": "user", "content": "count me"}], "max_tokens": 4}


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_reports_each_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["provider"] == "ok"


async def test_readiness_fails_when_a_check_fails(client_factory: Any) -> None:
    async with client_factory() as http:
        app = http._transport.app

        async def down() -> bool:
            return False

        app.state.wiring.hooks.readiness["database"] = down
        response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert "database" in body["message"]


async def test_readiness_fails_while_draining(client_factory: Any) -> None:
    async with client_factory() as http:
        http._transport.app.state.wiring.core.begin_shutdown()
        response = await http.get("/readyz")
    assert response.status_code == 503


async def test_metrics_count_streams_and_tokens(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/chat/stream", json=CHAT)
    await client.post("/api/v1/chat/completions", json={"model": "fake-echo-1", **CHAT})
    text = (await client.get("/metrics")).text
    assert 'tokens_streamed_total{transport="sse"} 4.0' in text
    assert 'tokens_streamed_total{transport="openai"} 4.0' in text
    assert 'generations_total{finish_reason="length",transport="sse"} 1.0' in text
    assert 'active_streams{transport="sse"} 0.0' in text
    assert "time_to_first_token_seconds_count" in text


async def test_deprecated_route_announces_its_sunset(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/engines")
    assert response.status_code == 200
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"].endswith("GMT")
    assert 'rel="successor-version"' in response.headers["link"]
    assert response.json() == (await client.get("/api/v1/models")).json()


async def test_openapi_documents_every_route_with_examples(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/chat/stream",
        "/api/v1/chat/completions",
        "/api/v1/models",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    assert paths["/api/v1/engines"]["get"]["deprecated"] is True
    assert (
        "text/event-stream" in paths["/api/v1/chat/stream"]["post"]["responses"]["200"]["content"]
    )
    components = schema["components"]["schemas"]
    for name in (
        "TokenMessage",
        "UsageMessage",
        "DoneMessage",
        "ErrorMessage",
        "ChatCompletionChunk",
        "ErrorBody",
    ):
        assert name in components
    for name in ("ChatRequest", "ChatCompletionRequest", "Message"):
        properties = components[name]["properties"]
        for field, spec in properties.items():
            assert spec.get("description"), f"{name}.{field} has no description"
            assert spec.get("examples") is not None or "$ref" in str(spec), (
                f"{name}.{field} has no example"
            )


async def test_docs_pages_are_served(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        assert "<html" in response.text.lower()


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nope")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == "not_found"


def test_fake_provider_satisfies_the_protocol() -> None:
    from {{cookiecutter.package_name}}.chat.providers.fake import FakeProvider

    provider: LLMProvider = FakeProvider(delay_ms=0, first_token_delay_ms=0)
    assert provider.name == "fake"


async def test_errors_of_streaming_routes_are_documented_as_json(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/api/v1/chat/stream", "/api/v1/chat/completions"):
        responses = schema["paths"][path]["post"]["responses"]
        for status in ("400", "422", "429", "500"):
            assert list(responses[status]["content"]) == ["application/json"], (path, status)
        # One event at a time (OpenAPI 3.2's itemSchema, read from ``schema`` in 3.1).
        event = responses["200"]["content"]["text/event-stream"]["schema"]
        assert event["type"] == "object"
        assert "data" in event["required"]
    stream_event = schema["paths"]["/api/v1/chat/stream"]["post"]["responses"]["200"]["content"][
        "text/event-stream"
    ]["schema"]
    assert stream_event["properties"]["event"]["enum"] == [
        "token",
        "tool_call",
        "usage",
        "done",
        "error",
    ]
    assert stream_event["required"] == ["data", "event", "id"]
    data = stream_event["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in data["contentSchema"]["oneOf"]] == [
        "TokenMessage",
        "ToolCallMessage",
        "UsageMessage",
        "DoneMessage",
        "ErrorMessage",
    ]
