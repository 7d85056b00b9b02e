"""GraphQL with the Redis limiter set to refuse while Redis is down: the REST code."""

from __future__ import annotations

from typing import Any

from graphql_helpers import CHAT_INPUT, CHAT_MUTATION, error_codes, graphql, graphql_socket
from redis_helpers import RedisServer
from stack_helpers import http_client


async def test_closed_mode_refuses_operations_with_rate_limiter_unavailable(
    live_server: Any, redis_server: RedisServer
) -> None:
    server = await live_server(
        redis_url=redis_server.url, redis_timeout_ms=100, rate_limit_failure_mode="closed"
    )
    # A socket opened while Redis was up: its handshake was counted by the HTTP layer,
    # each operation on it is counted by the schema.
    async with graphql_socket(server) as socket:
        redis_server.kill()
        await socket.subscribe("1")
        refused, end = await socket.until_end("1")

        # Over HTTP the request is refused before it reaches GraphQL, with REST's 503.
        async with http_client(server.url, headers=server.headers, timeout=10) as http:
            response, body = await graphql(http, CHAT_MUTATION, {"input": CHAT_INPUT})

    assert refused["type"] == "next"
    assert error_codes(refused["payload"]) == ["rate_limiter_unavailable"]
    (error,) = refused["payload"]["errors"]
    assert error["message"] == "Rate limiting is unavailable; retry shortly."
    assert isinstance(error["extensions"]["retry_after"], int)
    assert error["extensions"]["retry_after"] >= 1
    assert end == {"id": "1", "type": "complete"}

    assert response.status_code == 503
    assert body["code"] == "rate_limiter_unavailable"
    assert body["request_id"] == response.headers["x-request-id"]
    assert server.app.state.wiring.core.active == 0
