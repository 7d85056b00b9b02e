"""Operations are counted like their REST twins; generations hold a stream slot."""

from __future__ import annotations

from typing import Any

from graphql_helpers import (
    CHAT_INPUT,
    CHAT_MUTATION,
    LONG_INPUT,
    PACED,
    SERVICE_INFO,
    error_codes,
    events_of,
    graphql,
    graphql_socket,
    wait_until,
)
from stack_helpers import http_client


async def test_a_mutation_over_its_quota_is_rate_limited(live_server: Any) -> None:
    server = await live_server(rate_limit_routes=["graphql:chat=2/minute"])
    async with http_client(server.url, headers=server.headers) as http:
        for _ in range(2):
            _, body = await graphql(http, CHAT_MUTATION, {"input": CHAT_INPUT})
            assert body["data"]["chat"]["finishReason"] == "length"
        response, refused = await graphql(http, CHAT_MUTATION, {"input": CHAT_INPUT})
    assert refused["data"] is None
    (error,) = refused["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == "rate_limited"
    # Whole seconds, like Retry-After; how many depends on the backend's algorithm.
    assert isinstance(extensions["retry_after"], int)
    assert extensions["retry_after"] >= 1
    assert extensions["request_id"] == response.headers["x-request-id"]
    seconds = extensions["retry_after"]
    assert error["message"] == "Too many requests; retry after " + str(seconds) + " seconds."
    assert server.app.state.wiring.core.active == 0


async def test_a_subscription_over_its_quota_is_rate_limited(live_server: Any) -> None:
    server = await live_server(rate_limit_routes=["graphql:chatStream=1/minute"])
    async with graphql_socket(server) as socket:
        await socket.subscribe("1")
        assert events_of(await socket.until_end("1"))[-1]["__typename"] == "DoneEvent"
        await socket.subscribe("2")
        refused, end = await socket.until_end("2")
    assert refused["type"] == "next"
    assert error_codes(refused["payload"]) == ["rate_limited"]
    assert refused["payload"]["errors"][0]["extensions"]["retry_after"] >= 1
    assert end == {"id": "2", "type": "complete"}


async def test_generations_hold_a_stream_slot(live_server: Any) -> None:
    server = await live_server(max_concurrent_streams=1, **PACED)
    async with graphql_socket(server) as first, graphql_socket(server) as second:
        await first.subscribe("1", variables={"input": LONG_INPUT})
        await first.receive()

        # The caller's one slot is taken: another stream, or a whole completion, waits.
        await second.subscribe("2")
        refused, _ = await second.until_end("2")
        assert error_codes(refused["payload"]) == ["too_many_streams"]
        async with http_client(server.url, headers=server.headers) as http:
            _, body = await graphql(http, CHAT_MUTATION, {"input": CHAT_INPUT})
        assert error_codes(body) == ["too_many_streams"]

        # Unsubscribing gives the slot back.
        await first.complete("1")
        await wait_until(lambda: server.app.state.wiring.core.active == 0)
        await second.subscribe("3")
        events = events_of(await second.until_end("3"))
    assert events[-1] == {"__typename": "DoneEvent", "finishReason": "length"}


async def test_a_request_over_http_costs_one_like_its_rest_twin(live_server: Any) -> None:
    # SERVICE_INFO has two root fields; the HTTP request is what is counted, once.
    server = await live_server(rate_limit_ip="3/minute", rate_limit_user="3/minute")
    async with http_client(server.url, headers=server.headers) as http:
        answers = [await graphql(http, SERVICE_INFO) for _ in range(4)]
    for response, body in answers[:3]:
        assert response.status_code == 200
        assert "errors" not in body, body
        assert body["data"]["models"]
    refused, body = answers[3]
    assert refused.status_code == 429
    assert body["code"] == "rate_limited"
    assert ";r=0;" in refused.headers["ratelimit"]
