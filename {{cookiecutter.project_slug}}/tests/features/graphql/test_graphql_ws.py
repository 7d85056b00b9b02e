"""Subscriptions over graphql-transport-ws: protocol rules, caps, cancellation, no leaks."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.typing import Subprotocol

from graphql_helpers import (
    LONG_INPUT,
    PACED,
    SERVICE_INFO,
    events_of,
    graphql_socket,
    wait_until,
)
from stack_helpers import captured_logs

CYCLES = 500
TYPENAME_ONLY = "subscription S($input: ChatInput!) { chatStream(input: $input) { __typename } }"


def generating(server: Any) -> int:
    return int(server.app.state.wiring.core.active)


async def test_queries_run_over_the_socket_too(live_server: Any) -> None:
    server = await live_server()
    async with graphql_socket(server) as socket:
        await socket.subscribe("q", SERVICE_INFO, {})
        first, last = await socket.until_end("q")
    assert first["payload"]["data"]["serviceInfo"]["environment"] == "test"
    assert last == {"id": "q", "type": "complete"}


async def test_subscribing_before_connection_init_closes_4401(live_server: Any) -> None:
    server = await live_server()
    async with graphql_socket(server, init=False) as socket:
        await socket.subscribe("1")
        assert await socket.close_code() == 4401
    assert generating(server) == 0


async def test_a_silent_connection_is_closed_4408(live_server: Any) -> None:
    server = await live_server(graphql_connection_init_timeout_seconds=0.2)
    async with graphql_socket(server, init=False) as socket:
        assert await socket.close_code() == 4408


async def test_the_legacy_graphql_ws_protocol_is_refused(live_server: Any) -> None:
    server = await live_server()
    async with graphql_socket(server, init=False, subprotocol=Subprotocol("graphql-ws")) as socket:
        assert socket.ws.subprotocol is None
        assert await socket.close_code() == 4406


async def test_a_second_connection_init_closes_4429(live_server: Any) -> None:
    server = await live_server()
    async with graphql_socket(server) as socket:
        await socket.send({"type": "connection_init", "payload": {}})
        assert await socket.close_code() == 4429


async def test_operations_per_connection_are_capped(live_server: Any) -> None:
    server = await live_server(graphql_max_subscriptions_per_connection=2, **PACED)
    async with graphql_socket(server) as socket:
        for op_id in ("1", "2", "3"):
            await socket.subscribe(op_id, variables={"input": LONG_INPUT})
        refused = await socket.receive()
        while refused.get("id") != "3":
            refused = await socket.receive()
        assert refused["type"] == "error"
        assert refused["payload"][0]["message"] == "Subscription limit reached"
        await wait_until(lambda: generating(server) == 2)

        # Completing one makes room for another.
        await socket.complete("1")
        await socket.subscribe("4", variables={"input": LONG_INPUT})
        await wait_until(lambda: generating(server) == 2)
        message = await socket.receive()
        while message.get("id") != "4":
            message = await socket.receive()
        assert message["type"] == "next"
    await wait_until(lambda: generating(server) == 0)


async def test_complete_stops_the_generation(live_server: Any) -> None:
    server = await live_server(**PACED)
    provider = server.app.state.wiring.core.provider
    async with graphql_socket(server) as socket:
        await socket.subscribe("1", variables={"input": LONG_INPUT})
        first = await socket.receive()
        assert events_of([first])[0]["__typename"] == "TokenEvent"
        await socket.complete("1")
        await wait_until(lambda: generating(server) == 0 and provider.active == 0)
        # The socket stays usable, and the id can be used again.
        await socket.subscribe("1", SERVICE_INFO, {})
        messages = await socket.until_end("1")
    assert messages[-1]["type"] == "complete"


async def test_disconnecting_stops_the_generation(live_server: Any) -> None:
    server = await live_server(**PACED)
    provider = server.app.state.wiring.core.provider
    async with graphql_socket(server) as socket:
        await socket.subscribe("1", variables={"input": LONG_INPUT})
        await socket.receive()
        assert generating(server) == 1
    await wait_until(lambda: generating(server) == 0 and provider.active == 0)


async def test_clients_leaving_mid_result_are_not_logged_as_errors(live_server: Any) -> None:
    # Unpaced, and the connection dropped without a close handshake (as a client
    # that crashed or lost its network): the server is sending, and its send fails.
    server = await live_server(fake_llm_delay_ms=0, log_format="json")
    with captured_logs() as logs:
        for _ in range(10):
            async with graphql_socket(server) as socket:
                await socket.subscribe("1", TYPENAME_ONLY, {"input": LONG_INPUT})
                await socket.receive()
                socket.ws.transport.abort()
        await wait_until(lambda: generating(server) == 0)
    assert logs.events("graphql.client_disconnected")
    errors = [line for line in logs.lines if line.get("level") in ("error", "critical")]
    assert errors == []


async def test_a_draining_service_ends_subscriptions_with_a_final_event(live_server: Any) -> None:
    server = await live_server(**PACED)
    async with graphql_socket(server) as socket:
        await socket.subscribe("1", variables={"input": LONG_INPUT})
        await socket.receive()
        # What SIGTERM and the lifespan's shutdown do first.
        server.app.state.wiring.core.begin_shutdown()
        messages = await socket.until_end("1")
    events = events_of(messages)
    assert events[-2]["__typename"] == "ErrorEvent"
    assert events[-2]["code"] == "shutting_down"
    assert events[-1] == {"__typename": "DoneEvent", "finishReason": "shutdown"}
    assert messages[-1] == {"id": "1", "type": "complete"}


async def test_subscribe_disconnect_cycles_leave_no_task_behind(live_server: Any) -> None:
    # One stream slot: a slot that a cycle failed to give back would refuse the next one.
    # Quiet logs: a thousand access lines would be most of the time spent.
    server = await live_server(max_concurrent_streams=1, fake_llm_delay_ms=2, log_level="WARNING")

    async def cycle() -> None:
        async with graphql_socket(server) as socket:
            await socket.subscribe("1", TYPENAME_ONLY, {"input": LONG_INPUT})
            message = await socket.receive()
            assert message["payload"]["data"] == {"chatStream": {"__typename": "TokenEvent"}}

    def tasks() -> int:
        return len(asyncio.all_tasks())

    await cycle()
    await wait_until(lambda: generating(server) == 0)
    await asyncio.sleep(0.2)
    before = tasks()
    for _ in range(CYCLES):
        await cycle()
    # Closing handlers finish shortly after each client leaves; nothing may stay.
    await wait_until(lambda: generating(server) == 0 and tasks() <= before)
    assert server.app.state.wiring.core.provider.active == 0
    # And the server still serves.
    async with graphql_socket(server) as socket:
        await socket.subscribe("q", SERVICE_INFO, {})
        assert (await socket.until_end("q"))[-1]["type"] == "complete"
