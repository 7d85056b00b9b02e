"""streaming.v1.ChatService over a real loopback channel: tokens, validation, error statuses."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import grpc
import pytest

from grpc_helpers import (
    AUTH_METADATA,
    FakeUpstream,
    InMemoryRateLimiter,
    Quota,
    SettingsFactory,
    StreamScript,
    captured_logs,
    chat_pb2,
    collect,
    context_length_exceeded,
    grpc_app,
    kinds,
    parse_events,
    rate_limited,
    request,
    server_error,
    serving_grpc,
    trailing,
)

PROMPT = "streams over grpc"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def upstream_settings(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "llm_provider": "openai",
        "llm_base_url": upstream.base_url,
        "llm_api_key": "sk-test-key",
        "llm_max_retries": 0,
    }


async def test_stream_and_unary_give_the_same_tokens_as_sse(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings)) as client:
        body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 7}
        sse = await client.http.post("/api/v1/chat/stream", json=body)
        sse_tokens = [
            json.loads(event.data)["text"]
            for event in parse_events(sse.text)
            if event.event == "token"
        ]
        call = client.chat.StreamChat(request(PROMPT, 7), metadata=AUTH_METADATA)
        events, error = await collect(call)
        reply = await client.chat.Chat(request(PROMPT, 7), metadata=AUTH_METADATA)

    assert error is None
    assert len(sse_tokens) == 7
    assert kinds(events) == ["token"] * 7 + ["usage", "done"]
    assert [event.token.text for event in events[:7]] == sse_tokens
    assert [event.token.index for event in events[:7]] == list(range(7))
    usage = events[7].usage
    assert usage.completion_tokens == 7
    assert usage.prompt_tokens == len(PROMPT.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert events[8].done.finish_reason == "length"

    assert reply.text == "".join(sse_tokens)
    assert reply.finish_reason == "length"
    assert reply.model == "fake-echo-1"
    assert reply.usage == usage


async def test_request_fields_reach_the_core(make_settings: SettingsFactory) -> None:
    app = grpc_app(make_settings, default_max_tokens=3, llm_models="fake-echo-1,other-model")
    async with serving_grpc(app) as client:
        defaulted = await client.chat.Chat(request(PROMPT), metadata=AUTH_METADATA)
        chosen = await client.chat.Chat(
            request(PROMPT, 5, model="other-model", temperature=0.5), metadata=AUTH_METADATA
        )
    assert defaulted.usage.completion_tokens == 3
    assert defaulted.model == "fake-echo-1"
    assert chosen.usage.completion_tokens == 5
    assert chosen.model == "other-model"


async def test_request_id_is_echoed_or_made_and_logged(make_settings: SettingsFactory) -> None:
    app = grpc_app(make_settings, log_format="json")
    with captured_logs() as logs:
        async with serving_grpc(app) as client:
            given = client.chat.Chat(
                request(), metadata=(*AUTH_METADATA, ("x-request-id", "given-id.1"))
            )
            await given
            made = client.chat.Chat(
                request(), metadata=(*AUTH_METADATA, ("x-request-id", "not valid!"))
            )
            await made
            given_metadata = dict(await given.initial_metadata() or ())
            made_metadata = dict(await made.initial_metadata() or ())

    assert given_metadata["x-request-id"] == "given-id.1"
    made_id = made_metadata["x-request-id"]
    assert isinstance(made_id, str)
    assert str(uuid.UUID(made_id)) == made_id
    calls = logs.events("grpc.request")
    assert [(line["request_id"], line["code"]) for line in calls] == [
        ("given-id.1", "OK"),
        (made_id, "OK"),
    ]
    assert calls[0]["rpc"] == "/streaming.v1.ChatService/Chat"
    assert calls[0]["client_ip"] == "127.0.0.1"
    assert isinstance(calls[0]["duration_ms"], float)
    generations = logs.events("generation.end")
    assert [(line["request_id"], line["transport"]) for line in generations] == [
        ("given-id.1", "grpc"),
        (made_id, "grpc"),
    ]


INVALID = [
    pytest.param(chat_pb2.ChatRequest(), "messages", id="no-messages"),
    pytest.param(request(max_tokens=0), "max_tokens", id="max-tokens-zero"),
    pytest.param(request(max_tokens=40_000), "max_tokens", id="max-tokens-too-big"),
    pytest.param(request(temperature=3.0), "temperature", id="temperature"),
    pytest.param(request(stop=["a", "b", "c", "d", "e"]), "stop", id="five-stops"),
    pytest.param(request(logit_bias={"not-a-token": 1}), "logit_bias", id="logit-bias-key"),
    pytest.param(request(reasoning_effort="extreme"), "reasoning_effort", id="reasoning"),
    pytest.param(
        chat_pb2.ChatRequest(messages=[chat_pb2.Message(content="no role")]),
        "messages.0.role",
        id="role-unspecified",
    ),
]


@pytest.mark.parametrize(("message", "field"), INVALID)
async def test_invalid_requests_are_invalid_argument(
    make_settings: SettingsFactory, message: chat_pb2.ChatRequest, field: str
) -> None:
    async with serving_grpc(grpc_app(make_settings)) as client:
        events, stream_error = await collect(
            client.chat.StreamChat(message, metadata=AUTH_METADATA)
        )
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(message, metadata=AUTH_METADATA)
        assert client.fake.started == 0

    assert events == []
    assert stream_error is not None
    for error in (stream_error, unary.value):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith(field + ":")


UPSTREAM_FAILURES = [
    pytest.param(
        rate_limited("7"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "upstream_rate_limited",
        id="rate-limited",
    ),
    pytest.param(
        context_length_exceeded(),
        grpc.StatusCode.INVALID_ARGUMENT,
        "context_length_exceeded",
        id="context-length",
    ),
    pytest.param(server_error(500), grpc.StatusCode.INTERNAL, "upstream_error", id="server-error"),
]


@pytest.mark.parametrize(("script", "status", "code"), UPSTREAM_FAILURES)
async def test_core_errors_before_the_first_token_map_to_statuses(
    make_settings: SettingsFactory,
    upstream: FakeUpstream,
    script: Any,
    status: grpc.StatusCode,
    code: str,
) -> None:
    upstream.enqueue(script, script)
    async with serving_grpc(grpc_app(make_settings, **upstream_settings(upstream))) as client:
        events, stream_error = await collect(
            client.chat.StreamChat(request(), metadata=AUTH_METADATA)
        )
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)

    assert events == []
    assert stream_error is not None
    for error in (stream_error, unary.value):
        assert error.code() == status
        assert trailing(error)["x-error-code"] == code
        assert "sk-test-key" not in (error.details() or "")
        assert "127.0.0.1" not in (error.details() or "")
        if code == "upstream_rate_limited":
            assert trailing(error)["retry-after"] == "7"


async def test_unreachable_upstream_is_unavailable(make_settings: SettingsFactory) -> None:
    settings = {"llm_provider": "openai", "llm_base_url": "http://127.0.0.1:9/v1"}
    async with serving_grpc(grpc_app(make_settings, llm_max_retries=0, **settings)) as client:
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)
    assert unary.value.code() == grpc.StatusCode.UNAVAILABLE
    assert trailing(unary.value)["x-error-code"] == "upstream_unavailable"


async def test_failure_after_tokens_is_an_error_event_then_the_status(
    make_settings: SettingsFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b", "c", "d"), drop_after=2))
    async with serving_grpc(grpc_app(make_settings, **upstream_settings(upstream))) as client:
        events, error = await collect(client.chat.StreamChat(request(), metadata=AUTH_METADATA))

    assert kinds(events) == ["token", "token", "error"]
    assert [event.token.text for event in events[:2]] == ["a", "b"]
    assert events[2].error.code == "upstream_error"
    assert events[2].error.message == "The model provider returned an error."
    assert error is not None
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == events[2].error.message
    assert trailing(error)["x-error-code"] == "upstream_error"


async def test_generation_timeout_mid_stream_is_deadline_exceeded(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, fake_llm_delay_ms=20, generation_timeout=0.15)
    async with serving_grpc(app) as client:
        events, error = await collect(
            client.chat.StreamChat(request(max_tokens=1000), metadata=AUTH_METADATA)
        )
        assert client.service.active == 0

    assert kinds(events)[0] == "token"
    assert kinds(events)[-1] == "error"
    assert events[-1].error.code == "generation_timeout"
    assert error is not None
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_draining_service_refuses_new_calls_as_unavailable(
    make_settings: SettingsFactory,
) -> None:
    async with serving_grpc(grpc_app(make_settings)) as client:
        client.service.begin_shutdown()
        events, stream_error = await collect(
            client.chat.StreamChat(request(), metadata=AUTH_METADATA)
        )
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.chat.Chat(request(), metadata=AUTH_METADATA)

    assert events == []
    assert stream_error is not None
    for error in (stream_error, unary.value):
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert trailing(error)["x-error-code"] == "shutting_down"


SECRET = "redis password is hunter2"


class BrokenLimiter(InMemoryRateLimiter):
    """A rate-limit backend that fails the way an unreachable store might."""

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> NoReturn:
        raise RuntimeError(SECRET)


async def test_an_unexpected_failure_is_internal_without_its_details(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, log_format="json")
    # The one policy every transport shares, now over a broken backend.
    app.state.wiring.policy.limiter = BrokenLimiter(max_keys=100)
    with captured_logs() as logs:
        async with serving_grpc(app) as client:
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await client.chat.Chat(request(), metadata=AUTH_METADATA)
            events, stream_error = await collect(
                client.chat.StreamChat(request(), metadata=AUTH_METADATA)
            )

    assert events == []
    assert stream_error is not None
    for error in (unary.value, stream_error):
        assert error.code() == grpc.StatusCode.INTERNAL
        assert error.details() == "Internal error."
        assert SECRET not in str(error.debug_error_string())
    failures = logs.events("grpc.unhandled_error")
    assert len(failures) == 2
    assert SECRET in failures[0]["exception"]
    assert [line["code"] for line in logs.events("grpc.request")] == ["INTERNAL", "INTERNAL"]


async def test_sampling_fields_reach_the_core(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings)) as client:
        stopped = await client.chat.Chat(
            request("alpha beta gamma", 5, stop=[" gamma"]), metadata=AUTH_METADATA
        )
        seeded = await client.chat.Chat(
            request("alpha beta gamma", 3, seed=1, top_p=0.5, metadata={"team": "search"}),
            metadata=AUTH_METADATA,
        )
        structured = await client.chat.Chat(
            request(
                "weather",
                50,
                response_format=chat_pb2.ResponseFormat(
                    type="json_schema",
                    name="weather",
                    schema_json='{"type": "object", "properties": {"t": {"type": "integer"}},'
                    ' "required": ["t"]}',
                    strict=True,
                ),
            ),
            metadata=AUTH_METADATA,
        )
        with pytest.raises(grpc.aio.AioRpcError) as bad_schema:
            await client.chat.Chat(
                request(
                    response_format=chat_pb2.ResponseFormat(
                        type="json_schema", name="x", schema_json='{"type": "wat"}'
                    )
                ),
                metadata=AUTH_METADATA,
            )
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await client.chat.Chat(request(model="gpt-9"), metadata=AUTH_METADATA)
    assert (stopped.text, stopped.finish_reason) == ("alpha beta", "stop")
    assert seeded.text == "beta gamma alpha"
    assert json.loads(structured.text) == {"t": 0}
    assert bad_schema.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad_schema.value.details() or "").startswith("response_format.json_schema")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-9" in (unknown.value.details() or "")
