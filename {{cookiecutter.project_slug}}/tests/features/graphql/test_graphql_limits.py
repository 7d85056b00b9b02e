"""Documents too deep, too wide, too long or too large are refused before anything runs."""

from __future__ import annotations

from typing import Any

from graphql_helpers import error_codes, error_messages, graphql, graphql_socket
from stack_helpers import http_client


def nested_query(depth: int) -> str:
    """Fields nested ``depth`` deep (the schema has no such fields: depth is checked first)."""
    opening = "".join("f" + str(level) + " { " for level in range(depth))
    return "query Deep { " + opening + "leaf" + " }" * depth + " }"


def aliased_query(count: int) -> str:
    fields = " ".join("a" + str(n) + ": serviceInfo { name }" for n in range(count))
    return "query Wide { " + fields + " }"


async def test_a_depth_11_query_is_refused(live_server: Any) -> None:
    server = await live_server()
    async with http_client(server.url, headers=server.headers) as http:
        _, deep = await graphql(http, nested_query(11))
        _, allowed = await graphql(http, nested_query(10))
    assert deep["data"] is None
    assert "exceeds maximum operation depth of 10" in error_messages(deep)
    assert set(error_codes(deep)) == {"bad_request"}
    # Depth 10 fails only because the fields do not exist.
    assert "depth" not in error_messages(allowed)


async def test_the_depth_limit_is_a_setting(live_server: Any) -> None:
    server = await live_server(graphql_max_depth=3)
    async with http_client(server.url, headers=server.headers) as http:
        _, body = await graphql(http, nested_query(4))
    assert "exceeds maximum operation depth of 3" in error_messages(body)


async def test_an_alias_bomb_is_refused_before_any_resolver_runs(live_server: Any) -> None:
    server = await live_server(rate_limit_routes=["graphql:serviceInfo=2/minute"])
    async with http_client(server.url, headers=server.headers) as http:
        _, bomb = await graphql(http, aliased_query(40))
        _, few = await graphql(http, aliased_query(2))
    assert bomb["data"] is None
    assert "40 aliases found. Allowed: 15" in error_messages(bomb)
    # The bomb spent none of the two serviceInfo calls allowed a minute.
    assert "errors" not in few
    name = server.app.state.wiring.settings.app_name
    assert few["data"] == {"a0": {"name": name}, "a1": {"name": name}}


async def test_too_many_tokens_are_refused(live_server: Any) -> None:
    server = await live_server()
    query = "query { serviceInfo { " + "name " * 1200 + "} }"
    async with http_client(server.url, headers=server.headers) as http:
        _, body = await graphql(http, query)
    assert body["data"] is None
    assert "more than 1000 tokens" in error_messages(body)


async def test_an_oversized_document_is_refused(live_server: Any) -> None:
    server = await live_server()
    long_text = '"' + "x" * 20_000 + '"'
    query = (
        "mutation { chat(input: {messages: [{role: user, content: " + long_text + "}]}) { text } }"
    )
    async with http_client(server.url, headers=server.headers) as http:
        _, body = await graphql(http, query)
        # The same text as a variable is fine: variables are not part of the document.
        _, as_variable = await graphql(
            http,
            "mutation Chat($input: ChatInput!) { chat(input: $input) { finishReason } }",
            {"input": {"messages": [{"role": "user", "content": "x" * 20_000}], "maxTokens": 1}},
        )
    assert body["data"] is None
    assert error_codes(body) == ["request_too_large"]
    assert "at most 16384" in error_messages(body)
    assert server.app.state.wiring.core.active == 0
    assert as_variable["data"] == {"chat": {"finishReason": "length"}}


async def test_limits_apply_over_websocket_too(live_server: Any) -> None:
    server = await live_server()
    async with graphql_socket(server) as socket:
        await socket.subscribe("deep", nested_query(11), {})
        (message,) = await socket.until_end("deep")
    assert message["type"] == "error"
    messages = " | ".join(error["message"] for error in message["payload"])
    assert "exceeds maximum operation depth of 10" in messages
    assert {error["extensions"]["code"] for error in message["payload"]} == {"bad_request"}
