"""A client that cancels, or whose deadline passes, stops the generation behind its call."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from grpc_helpers import (
    AUTH_METADATA,
    GrpcClient,
    SettingsFactory,
    captured_logs,
    collect,
    grpc_app,
    kinds,
    request,
    serving_grpc,
    wait_until,
)

# Paced tokens and a long answer: a generation that runs until something stops it.
SLOW = {"fake_llm_delay_ms": 20}
LONG = 1000


def stopped(client: GrpcClient) -> bool:
    return client.service.active == 0 and client.fake.active == 0


async def generations(client: GrpcClient, finish_reason: str) -> str:
    """The ``generations_total`` sample for gRPC generations that ended this way."""
    body = (await client.http.get("/metrics")).text
    prefix = "generations_total{"
    for line in body.splitlines():
        if (
            line.startswith(prefix)
            and f'finish_reason="{finish_reason}"' in line
            and 'transport="grpc"' in line
        ):
            return line.rsplit(" ", 1)[1]
    return "0"


def call_tasks(baseline: set[asyncio.Task[object]]) -> set[str]:
    """Tasks started since ``baseline`` and still pending, but for the server's accept
    loop (grpc.aio replaces each ``AioServer._request_*call`` task a call used)."""
    names = {
        str(getattr(task.get_coro(), "__qualname__", task))
        for task in asyncio.all_tasks()
        if task not in baseline and not task.done()
    }
    return {name for name in names if not name.startswith("AioServer._request")}


async def test_cancelling_mid_stream_stops_the_generation(make_settings: SettingsFactory) -> None:
    app = grpc_app(make_settings, log_format="json", **SLOW)
    with captured_logs() as logs:
        async with serving_grpc(app) as client:
            await client.chat.Chat(request(max_tokens=1), metadata=AUTH_METADATA)  # warm up
            baseline = set(asyncio.all_tasks())
            call = client.chat.StreamChat(request(max_tokens=LONG), metadata=AUTH_METADATA)
            received = 0
            async for event in call:
                assert event.WhichOneof("event") == "token"
                received += 1
                if received == 3:
                    break
            assert client.service.active == 1
            call.cancel()
            elapsed = await wait_until(lambda: stopped(client), timeout=0.1)
            assert elapsed < 0.1
            await wait_until(lambda: not call_tasks(baseline), timeout=0.5)
            assert await generations(client, "cancelled") == "1.0"
            assert await call.code() == grpc.StatusCode.CANCELLED

    assert [line["code"] for line in logs.events("grpc.request")] == ["OK", "CANCELLED"]


async def test_cancelling_a_unary_call_stops_the_generation(
    make_settings: SettingsFactory,
) -> None:
    async with serving_grpc(grpc_app(make_settings, **SLOW)) as client:
        call = client.chat.Chat(request(max_tokens=LONG), metadata=AUTH_METADATA)
        await wait_until(lambda: client.fake.active == 1, timeout=2)
        call.cancel()
        await wait_until(lambda: stopped(client), timeout=0.1)
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await generations(client, "cancelled") == "1.0"


async def test_a_passed_deadline_is_deadline_exceeded_and_stops_the_generation(
    make_settings: SettingsFactory,
) -> None:
    async with serving_grpc(grpc_app(make_settings, **SLOW)) as client:
        events, error = await collect(
            client.chat.StreamChat(request(max_tokens=LONG), metadata=AUTH_METADATA, timeout=0.3)
        )
        await wait_until(lambda: stopped(client), timeout=0.1)
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(max_tokens=LONG), metadata=AUTH_METADATA, timeout=0.2)
        await wait_until(lambda: stopped(client), timeout=0.1)
        assert await generations(client, "cancelled") == "2.0"

    assert events
    assert set(kinds(events)) == {"token"}
    assert error is not None
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert unary.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
