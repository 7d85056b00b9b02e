"""Request rates and the concurrent-stream cap hold for gRPC, through HTTP's policy."""

from __future__ import annotations

import grpc
import pytest

from grpc_helpers import (
    AUTH_METADATA,
    SettingsFactory,
    collect,
    grpc_app,
    request,
    serving_grpc,
    trailing,
)

CHAT = "/streaming.v1.ChatService/Chat"
# Anonymous callers are limited per IP, authenticated ones per key or user; the
# suite's own credentials (AUTH_METADATA) decide which applies, so set both.
TWO_A_MINUTE = {"rate_limit_ip": "2/minute", "rate_limit_user": "2/minute"}


async def test_over_the_rate_is_resource_exhausted(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings, **TWO_A_MINUTE)) as client:
        first = client.chat.Chat(request(), metadata=AUTH_METADATA)
        await first
        events, stream_error = await collect(
            client.chat.StreamChat(request(), metadata=AUTH_METADATA)
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
        assert client.fake.started == 2
        first_trailing = dict(await first.trailing_metadata() or ())

    assert stream_error is None
    assert events
    assert ";r=1;" in first_trailing["ratelimit"]
    error = refused.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    seconds = trailing(error)["retry-after"]
    assert int(seconds) >= 1
    assert error.details() == f"Too many requests; retry after {seconds} seconds."
    assert "ratelimit-policy" in trailing(error)


async def test_rate_limit_routes_match_the_full_method_name(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, rate_limit_routes=f"{CHAT}=1/minute")
    async with serving_grpc(app) as client:
        await client.chat.Chat(request(), metadata=AUTH_METADATA)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
        _, stream_error = await collect(client.chat.StreamChat(request(), metadata=AUTH_METADATA))

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stream_error is None


async def test_http_and_grpc_spend_the_same_budget(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings, **TWO_A_MINUTE)) as client:
        for _ in range(2):
            response = await client.http.get("/api/v1/models")
            assert response.status_code == 200
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_disabled_rate_limits_let_everything_through(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, rate_limit_enabled=False, **TWO_A_MINUTE)
    async with serving_grpc(app) as client:
        for _ in range(4):
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
        assert client.fake.started == 4


async def test_the_stream_cap_refuses_a_second_generation_until_the_first_ends(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, max_concurrent_streams=1, fake_llm_delay_ms=20)
    async with serving_grpc(app) as client:
        running = client.chat.StreamChat(request(max_tokens=1000), metadata=AUTH_METADATA)
        assert (await running.read()) != grpc.aio.EOF
        events, stream_error = await collect(
            client.chat.StreamChat(request(), metadata=AUTH_METADATA)
        )
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
        running.cancel()
        reply = await client.chat.Chat(request(max_tokens=1), metadata=AUTH_METADATA)

    assert events == []
    assert stream_error is not None
    for error in (stream_error, unary.value):
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == ("At most 1 concurrent streams are allowed; close one first.")
        assert trailing(error)["retry-after"] == "1"
    assert reply.usage.completion_tokens == 1
