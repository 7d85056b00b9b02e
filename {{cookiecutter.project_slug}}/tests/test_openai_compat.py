"""The OpenAI-compatible endpoint, driven by the official openai SDK over real HTTP."""

from __future__ import annotations

import json
from typing import Any, Literal, cast

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from conftest import openai_sdk
from sse_client import parse_events

MESSAGES: list[Any] = [{"role": "user", "content": "streams carry tokens"}]


async def test_sdk_streams_tokens(live_server: Any) -> None:
    server = await live_server()
    async with openai_sdk(server) as client:
        stream = await client.chat.completions.create(
            model="fake-echo-1",
            messages=MESSAGES,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streams carry tokens streams"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    assert len({c.id for c in chunks}) == 1


async def test_sdk_without_streaming(live_server: Any) -> None:
    server = await live_server()
    async with openai_sdk(server) as client:
        completion = await client.chat.completions.create(
            model="fake-echo-1", messages=MESSAGES, max_completion_tokens=3
        )
    assert completion.choices[0].message.content == "streams carry tokens"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.total_tokens == 6
    assert completion.model == "fake-echo-1"


async def test_sdk_lists_models(live_server: Any) -> None:
    server = await live_server()
    async with openai_sdk(server) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-echo-1"]


async def test_stream_without_usage_ends_with_done(client: httpx.AsyncClient) -> None:
    body = {"model": "fake-echo-1", "messages": MESSAGES, "max_tokens": 2, "stream": True}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    datas = [e.data for e in parse_events(response.text)]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_content_parts_and_developer_role(client: httpx.AsyncClient) -> None:
    body = {
        "model": "fake-echo-1",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "parts"}, {"type": "text", "text": " work"}],
            },
        ],
        "max_tokens": 2,
    }
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "parts work"


async def test_error_before_first_token_is_a_json_error(live_server: Any) -> None:
    server = await live_server(fake_llm_first_token_delay_ms=2000, first_token_timeout=0.1)
    async with openai_sdk(server) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="fake-echo-1", messages=MESSAGES, stream=True
            )
    assert caught.value.status_code == 504
    body = caught.value.response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "generation_timeout"
    assert body["error"]["type"] == "server_error"
    assert caught.value.response.headers["x-request-id"]


async def test_error_mid_stream_is_an_error_chunk_then_done(client_factory: Any) -> None:
    async with client_factory(fake_llm_delay_ms=30, generation_timeout=0.1) as http:
        body = {"model": "fake-echo-1", "messages": MESSAGES, "max_tokens": 50, "stream": True}
        response = await http.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    datas = [e.data for e in parse_events(response.text)]
    assert datas[-1] == "[DONE]"
    error = json.loads(datas[-2])["error"]
    assert error["code"] == "generation_timeout"
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"]
    assert 1 < len(datas) - 2 < 50


def assert_invalid_request(response: httpx.Response, param: str) -> None:
    """OpenAI's 400: the SDKs raise BadRequestError and show ``param``."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"]


async def test_n_above_one_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/chat/completions", json={"model": "fake-echo-1", "messages": MESSAGES, "n": 2}
    )
    assert_invalid_request(response, "n")


async def test_unusable_text_is_a_400_not_a_500(client: httpx.AsyncClient) -> None:
    long_parts = [{"type": "text", "text": "a" * 60_000}, {"type": "text", "text": "b" * 60_000}]
    for content in ("a\ud800b", "a" * 100_001, long_parts):
        body = {"model": "fake-echo-1", "messages": [{"role": "user", "content": content}]}
        # json.dumps escapes the lone surrogate as \ud800, as a client's encoder would.
        response = await client.post(
            "/api/v1/chat/completions",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, content if isinstance(content, str) else "parts"
        assert response.json()["error"]["param"].startswith("messages.0")


async def test_no_lax_type_coercion(client: httpx.AsyncClient) -> None:
    for extra in (
        {"max_tokens": "3"},
        {"max_tokens": True},
        {"max_tokens": 3.5},
        {"temperature": False},
        {"stream": 0},
        {"n": 1.5},
    ):
        body = {"model": "fake-echo-1", "messages": MESSAGES, **extra}
        response = await client.post("/api/v1/chat/completions", json=body)
        assert_invalid_request(response, next(iter(extra)))
    stream_options = {"include_usage": 0}
    body = {
        "model": "fake-echo-1",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": stream_options,
    }
    response = await client.post("/api/v1/chat/completions", json=body)
    assert_invalid_request(response, "stream_options.include_usage")


async def test_integral_numbers_are_integers(client: httpx.AsyncClient) -> None:
    # JSON has one number type, and JSON Schema's "integer" admits 3.0.
    body = {"model": "fake-echo-1", "messages": MESSAGES, "max_tokens": 3.0, "n": 1.0}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 3


async def test_undecodable_body_is_a_json_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/chat/completions",
        content=b'"\xff',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_sdk_raises_its_typed_errors(live_server: Any) -> None:
    server = await live_server(max_tokens_limit=100, default_max_tokens=4)
    async with openai_sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as invalid:
            await client.chat.completions.create(
                model="fake-echo-1", messages=cast(Any, [{"role": "wizard", "content": "x"}])
            )
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(model="gpt-9", messages=MESSAGES, stream=True)
        with pytest.raises(openai.BadRequestError) as too_many:
            await client.chat.completions.create(
                model="fake-echo-1", messages=MESSAGES, max_completion_tokens=101
            )
        with pytest.raises(openai.BadRequestError) as too_many_old:
            await client.chat.completions.create(
                model="fake-echo-1", messages=MESSAGES, max_tokens=101
            )
    assert invalid.value.param == "messages.0.role"
    assert unknown.value.code == "model_not_found"
    assert unknown.value.param == "model"
    assert "gpt-9" in unknown.value.message
    assert too_many.value.param == "max_completion_tokens"
    assert too_many_old.value.param == "max_tokens"
    assert "100" in too_many.value.message


async def test_models_are_the_allow_list_and_can_be_retrieved(live_server: Any) -> None:
    server = await live_server(llm_model="small", llm_models="small,large=upstream-large-v2")
    async with openai_sdk(server) as client:
        listed = [model.id for model in (await client.models.list()).data]
        retrieved = await client.models.retrieve("large")
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("upstream-large-v2")
        answer = await client.chat.completions.create(
            model="large", messages=MESSAGES, max_tokens=2
        )
    assert listed == ["small", "large"]
    assert (retrieved.id, retrieved.object) == ("large", "model")
    assert missing.value.code == "model_not_found"
    assert answer.model == "large"


async def test_rate_limits_are_rate_limit_errors_with_retry_after(live_server: Any) -> None:
    server = await live_server(rate_limit_ip="1/hour", rate_limit_user="1/hour")
    async with openai_sdk(server) as client:
        await client.models.list()
        with pytest.raises(openai.RateLimitError) as caught:
            await client.models.list()
    assert caught.value.response.headers["retry-after"]
    assert caught.value.body is not None
    assert caught.value.response.json()["error"]["type"] == "rate_limit_error"


async def test_stop_and_seed_are_honoured_by_the_fake_model(client: httpx.AsyncClient) -> None:
    def ask(**fields: Any) -> dict[str, Any]:
        messages = [{"role": "user", "content": "alpha beta gamma delta"}]
        return {"model": "fake-echo-1", "messages": messages, "max_tokens": 6, **fields}

    stopped = await client.post("/api/v1/chat/completions", json=ask(stop=" gamma"))
    across = await client.post("/api/v1/chat/completions", json=ask(stop=["a be", "zzz"]))
    streamed = await client.post("/api/v1/chat/completions", json=ask(stop=["delta"], stream=True))
    seeded = [
        (await client.post("/api/v1/chat/completions", json=ask(seed=seed))).json()
        for seed in (1, 1, 2)
    ]
    choice = stopped.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("alpha beta", "stop")
    assert stopped.json()["usage"]["completion_tokens"] == 3
    # A stop sequence that spans two tokens: nothing of it reaches the client.
    assert across.json()["choices"][0]["message"]["content"] == "alph"
    chunks = [json.loads(e.data) for e in parse_events(streamed.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "alpha beta gamma "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    texts = [answer["choices"][0]["message"]["content"] for answer in seeded]
    assert texts[0] == texts[1] == "beta gamma delta alpha beta gamma"
    assert texts[2] == "gamma delta alpha beta gamma delta"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("logprobs", True),
        ("top_logprobs", 2),
        ("modalities", ["text", "audio"]),
        ("store", True),
        ("brand_new_parameter", 1),
    ],
)
async def test_a_field_not_served_is_a_400_naming_it(
    client: httpx.AsyncClient, field: str, value: Any
) -> None:
    body = {"model": "fake-echo-1", "messages": MESSAGES, field: value}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert_invalid_request(response, field)


async def test_values_that_ask_for_nothing_are_accepted(client: httpx.AsyncClient) -> None:
    body = {
        "model": "fake-echo-1",
        "messages": MESSAGES,
        "max_tokens": 2,
        "n": 1,
        "functions": [],
        "function_call": "none",
        "response_format": {"type": "text"},
        "logprobs": False,
        "store": False,
    }
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


class Forecast(BaseModel):
    city: str
    days: int = Field(ge=1, le=7)
    unit: Literal["celsius", "fahrenheit"]
    highs: list[float]


async def test_structured_output_parses_into_the_model(live_server: Any) -> None:
    server = await live_server()
    ask = [{"role": "user", "content": "weather in Lisbon"}]
    async with openai_sdk(server) as client:
        parsed = await client.chat.completions.parse(
            model="fake-echo-1", messages=cast(Any, ask), response_format=Forecast, max_tokens=200
        )
        loose = await client.chat.completions.create(
            model="fake-echo-1",
            messages=cast(Any, ask),
            response_format={"type": "json_object"},
            max_tokens=200,
        )
    forecast = parsed.choices[0].message.parsed
    assert isinstance(forecast, Forecast)
    assert (forecast.days, forecast.unit) == (1, "celsius")
    assert parsed.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)


async def test_json_cut_short_by_max_tokens_finishes_with_length(client: httpx.AsyncClient) -> None:
    body = {
        "model": "fake-echo-1",
        "messages": MESSAGES,
        "response_format": {"type": "json_object"},
        "max_tokens": 2,
    }
    choice = (await client.post("/api/v1/chat/completions", json=body)).json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"]) == 8


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "x"}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wat"}}},
            "response_format.json_schema.schema",
        ),
        ({"type": "yaml"}, "response_format"),
    ],
)
async def test_a_bad_response_format_is_a_400_naming_it(
    client: httpx.AsyncClient, response_format: dict[str, Any], param: str
) -> None:
    body = {"model": "fake-echo-1", "messages": MESSAGES, "response_format": response_format}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(param)
