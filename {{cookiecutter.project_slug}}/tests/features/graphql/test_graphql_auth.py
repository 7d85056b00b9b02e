"""With API keys configured, GraphQL needs one: in a header over HTTP, and on the
WebSocket handshake or in the ``connection_init`` payload."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from graphql_helpers import SERVICE_INFO, graphql, graphql_socket
from stack_helpers import http_client

KEY = "ci-secret-0123456789"
OTHER_KEY = "other-secret-0123456789"
KEYS = {"api_keys": ["ci:" + KEY, "other:" + OTHER_KEY, "gone:gone-secret-0123456789"]}
KEYS_REVOKED = {**KEYS, "api_key_revoked": ["gone"]}


async def test_http_needs_a_valid_key(live_server: Any) -> None:
    server = await live_server(**KEYS)
    async with http_client(server.url) as http:
        missing = await http.post("/api/v1/graphql", json={"query": SERVICE_INFO})
        bad = await http.post(
            "/api/v1/graphql", json={"query": SERVICE_INFO}, headers={"x-api-key": "wrong"}
        )
        _, good = await graphql(http, SERVICE_INFO, headers={"x-api-key": KEY})
    assert missing.status_code == 401
    assert bad.status_code == 401
    assert good["data"]["serviceInfo"]["environment"] == "test"


async def test_a_websocket_without_any_key_is_refused(live_server: Any) -> None:
    server = await live_server(**KEYS)
    with pytest.raises(InvalidStatus) as refused:
        async with graphql_socket(server, headers={}, init=False):
            pass
    assert refused.value.response.status_code == 401


@pytest.mark.parametrize("presented", ["wrong-key-0123456789", "gone-secret-0123456789"])
async def test_bad_connection_init_credentials_close_4403(live_server: Any, presented: str) -> None:
    server = await live_server(**KEYS_REVOKED)
    async with graphql_socket(server, headers={"x-api-key": KEY}, init=False) as socket:
        await socket.send({"type": "connection_init", "payload": {"x-api-key": presented}})
        assert await socket.close_code() == 4403


async def test_a_good_key_works_on_the_handshake_or_in_the_payload(live_server: Any) -> None:
    server = await live_server(**KEYS)
    # The handshake's key alone...
    async with graphql_socket(server, headers={"x-api-key": KEY}, payload={}) as socket:
        await socket.subscribe("1", SERVICE_INFO, {})
        assert (await socket.until_end("1"))[-1]["type"] == "complete"
    # ... or a key in the payload, which then decides who the connection is.
    async with graphql_socket(
        server, headers={"x-api-key": KEY}, payload={"X-API-Key": OTHER_KEY}
    ) as socket:
        await socket.subscribe("2", SERVICE_INFO, {})
        assert (await socket.until_end("2"))[-1]["type"] == "complete"


async def test_the_payload_key_is_the_one_rate_limited(live_server: Any) -> None:
    server = await live_server(**KEYS, rate_limit_routes=["graphql:serviceInfo=1/minute"])
    for op_id, payload in (("1", {"x-api-key": OTHER_KEY}), ("2", {"x-api-key": OTHER_KEY})):
        async with graphql_socket(server, headers={"x-api-key": KEY}, payload=payload) as socket:
            await socket.subscribe(op_id, SERVICE_INFO, {})
            first = (await socket.until_end(op_id))[0]
            if op_id == "1":
                assert first["payload"]["data"]["serviceInfo"]
            else:
                assert first["payload"]["errors"][0]["extensions"]["code"] == "rate_limited"
    # The handshake's own key still has its call.
    async with graphql_socket(server, headers={"x-api-key": KEY}, payload={}) as socket:
        await socket.subscribe("3", SERVICE_INFO, {})
        assert (await socket.until_end("3"))[0]["payload"]["data"]["serviceInfo"]
