"""GraphQL over HTTP: the same answers as the REST API, its error codes, its error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from {{cookiecutter.package_name}} import __version__

from graphql_helpers import (
    CHAT_INPUT,
    CHAT_MUTATION,
    CHAT_SUBSCRIPTION,
    PATH,
    SERVICE_INFO,
    error_codes,
    events_of,
    graphql,
    graphql_socket,
    sse_tokens,
    token_texts,
)
from stack_helpers import assert_error_shape, http_client


async def test_queries_describe_the_service_like_the_rest_api(live_server: Any) -> None:
    server = await live_server()
    async with http_client(server.url, headers=server.headers) as http:
        response, body = await graphql(http, SERVICE_INFO)
        models = (await http.get("/api/v1/models")).json()["data"]
    assert response.status_code == 200
    assert "errors" not in body
    settings = server.app.state.wiring.settings
    assert body["data"]["serviceInfo"] == {
        "name": settings.app_name,
        "version": __version__,
        "environment": "test",
    }
    assert body["data"]["models"] == [
        {"id": model["id"], "ownedBy": model["owned_by"]} for model in models
    ]


async def test_mutation_and_subscription_return_the_sse_tokens(live_server: Any) -> None:
    server = await live_server()
    rest_request = {"messages": CHAT_INPUT["messages"], "max_tokens": CHAT_INPUT["maxTokens"]}
    async with http_client(server.url, headers=server.headers) as http:
        tokens = await sse_tokens(http, rest_request)
        _, body = await graphql(http, CHAT_MUTATION, {"input": CHAT_INPUT})
    assert len(tokens) == CHAT_INPUT["maxTokens"]

    chat = body["data"]["chat"]
    assert chat["text"] == "".join(tokens)
    assert chat["finishReason"] == "length"
    assert chat["model"] == server.app.state.wiring.settings.llm_model
    assert chat["usage"]["completionTokens"] == len(tokens)

    async with graphql_socket(server) as socket:
        await socket.subscribe("1", CHAT_SUBSCRIPTION, {"input": CHAT_INPUT})
        messages = await socket.until_end("1")
    assert messages[-1] == {"id": "1", "type": "complete"}
    events = events_of(messages)
    assert token_texts(events) == tokens
    assert [event["index"] for event in events[: len(tokens)]] == list(range(len(tokens)))
    assert [event["__typename"] for event in events[len(tokens) :]] == ["UsageEvent", "DoneEvent"]
    assert events[-2]["totalTokens"] == chat["usage"]["totalTokens"]
    assert events[-1] == {"__typename": "DoneEvent", "finishReason": "length"}


async def test_an_invalid_input_is_a_validation_error(live_server: Any) -> None:
    server = await live_server()
    async with http_client(server.url, headers=server.headers) as http:
        response, body = await graphql(
            http, CHAT_MUTATION, {"input": {"messages": [], "maxTokens": 0}}
        )
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {
        "code": "validation_error",
        "request_id": response.headers["x-request-id"],
    }
    # Named as the GraphQL client wrote them, not as the Pydantic model spells them.
    assert "messages:" in error["message"]
    assert "maxTokens:" in error["message"]


async def test_a_document_error_has_a_code_and_the_request_id(live_server: Any) -> None:
    server = await live_server()
    async with http_client(server.url, headers=server.headers) as http:
        response, body = await graphql(http, "query { nope }")
    assert error_codes(body) == ["bad_request"]
    assert body["errors"][0]["extensions"]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"query=%7B%7D", "application/x-www-form-urlencoded"),
        (b'{"variables": {}}', "application/json"),
        (b'"AAA"', "application/json"),
        (b"[1, 2]", "application/json"),
        (
            b'{"query": "subscription { chatStream(input: {messages: []}) { __typename } }"}',
            "application/json",
        ),
    ],
    ids=["bad-json", "form", "no-query", "a-string", "a-list", "subscription-over-http"],
)
async def test_unreadable_requests_get_the_api_error_shape(
    live_server: Any, content: bytes, content_type: str
) -> None:
    server = await live_server()
    async with http_client(server.url, headers=server.headers) as http:
        response = await http.post(PATH, content=content, headers={"content-type": content_type})
    assert_error_shape(response, 400, "bad_request")


async def test_graphiql_is_served_in_development_with_its_own_csp(live_server: Any) -> None:
    server = await live_server(environment="development")
    async with http_client(server.url, headers=server.headers) as http:
        page = await http.get(PATH, headers={"accept": "text/html"})
        query = await http.get(PATH, params={"query": "{ serviceInfo { name } }"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline' https://unpkg.com" in csp
    assert "frame-ancestors 'none'" in csp
    # Queries go in POST bodies only: a URL ends up in logs and caches.
    assert query.status_code == 400


async def test_sampling_fields_and_the_model_list_reach_the_core(live_server: Any) -> None:
    server = await live_server()
    messages = [{"role": "user", "content": "alpha beta gamma"}]
    stopped_input = {"messages": messages, "maxTokens": 5, "stop": [" gamma"], "seed": 0}
    unknown_input = {"messages": messages, "model": "gpt-9"}
    json_input = {"messages": messages, "maxTokens": 50, "responseFormat": {"type": "json_object"}}
    async with http_client(server.url, headers=server.headers) as http:
        _, stopped = await graphql(http, CHAT_MUTATION, {"input": stopped_input})
        _, unknown = await graphql(http, CHAT_MUTATION, {"input": unknown_input})
        _, structured = await graphql(http, CHAT_MUTATION, {"input": json_input})
    chat = stopped["data"]["chat"]
    assert (chat["text"], chat["finishReason"]) == ("alpha beta", "stop")
    assert unknown["errors"][0]["extensions"]["code"] == "model_not_found"
    answer = structured["data"]["chat"]
    assert json.loads(answer["text"]) == {"answer": "alpha beta gamma"}
    assert answer["finishReason"] == "stop"
