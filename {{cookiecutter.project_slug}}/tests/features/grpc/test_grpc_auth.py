"""API keys (and any other authenticator a feature adds) guard the gRPC chat service."""

from __future__ import annotations

import grpc
import pytest

from grpc_helpers import (
    SettingsFactory,
    captured_logs,
    collect,
    grpc_app,
    health_pb2,
    kinds,
    request,
    serving_grpc,
)

ALICE = "alice-secret-0123456789"
BOB = "bob-secret-0123456789ab"
KEYS = {"api_keys": f"alice:{ALICE},bob:{BOB}", "api_key_revoked": "bob"}

REFUSALS = [
    pytest.param((), "Authentication is required.", id="missing"),
    pytest.param((("x-api-key", "wrong-key-0123456789"),), "The API key is not valid.", id="bad"),
    pytest.param((("x-api-key", BOB),), "This API key has been revoked.", id="revoked"),
]


@pytest.mark.parametrize(("metadata", "details"), REFUSALS)
async def test_refused_credentials_are_unauthenticated(
    make_settings: SettingsFactory, metadata: tuple[tuple[str, str], ...], details: str
) -> None:
    async with serving_grpc(grpc_app(make_settings, **KEYS)) as client:
        events, stream_error = await collect(client.chat.StreamChat(request(), metadata=metadata))
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(), metadata=metadata)
        assert client.fake.started == 0

    assert events == []
    assert stream_error is not None
    for error in (stream_error, unary.value):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == details


async def test_a_valid_key_is_served_and_logged_as_its_principal(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, log_format="json", **KEYS)
    with captured_logs() as logs:
        async with serving_grpc(app) as client:
            metadata = (("x-api-key", ALICE),)
            events, error = await collect(client.chat.StreamChat(request(), metadata=metadata))
            reply = await client.chat.Chat(request(max_tokens=2), metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError):
                await client.chat.Chat(request())

    assert error is None
    assert kinds(events)[-1] == "done"
    assert reply.usage.completion_tokens == 2
    calls = logs.events("grpc.request")
    assert [(line["principal"], line["code"]) for line in calls] == [
        ("alice", "OK"),
        ("alice", "OK"),
        (None, "UNAUTHENTICATED"),
    ]
    assert [line["reason"] for line in logs.events("auth.refused")] == [
        "Authentication is required."
    ]


async def test_health_and_reflection_need_no_credentials(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings, **KEYS)) as client:
        health = await client.health_check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
