"""gRPC with the Redis limiter set to refuse while Redis is down: UNAVAILABLE, as HTTP's 503."""

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
from redis_helpers import RedisServer


async def test_closed_mode_refuses_calls_with_unavailable(
    make_settings: SettingsFactory, redis_server: RedisServer
) -> None:
    app = grpc_app(
        make_settings,
        redis_url=redis_server.url,
        redis_timeout_ms=100,
        rate_limit_failure_mode="closed",
    )
    async with serving_grpc(app) as client:
        redis_server.kill()
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
        events, streamed = await collect(client.chat.StreamChat(request(), metadata=AUTH_METADATA))
        started = client.fake.started

    assert events == []
    assert streamed is not None
    for error in (unary.value, streamed):
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert error.details() == "Rate limiting is unavailable; retry shortly."
        assert int(trailing(error)["retry-after"]) >= 1
    # Nothing was generated for a caller whose limit could not be checked.
    assert started == 0
