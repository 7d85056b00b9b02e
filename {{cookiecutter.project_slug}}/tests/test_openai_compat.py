"""The OpenAI-compatible endpoint, driven by the official openai SDK over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from sse_client import parse_events

MESSAGES: list[Any] = [{"role": "user", "content": "streams carry tokens"}]


def sdk(server: Any) -> openai.AsyncOpenAI:
    # The server's credentials, if any, replace the SDK's own Authorization header.
    return openai.AsyncOpenAI(
        base_url=f"{server.url}/api/v1",
        api_key="unused",
        max_retries=0,
        default_headers=server.headers,
    )


async def test_sdk_streams_tokens(live_server: Any) -> None:
    server = await live_server()
    async with sdk(server) as client:
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
    async with sdk(server) as client:
        completion = await client.chat.completions.create(
            model="fake-echo-1", messages=MESSAGES, max_completion_tokens=3
        )
    assert completion.choices[0].message.content == "streams carry tokens"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.total_tokens == 6
    assert completion.model == "fake-echo-1"


async def test_sdk_lists_models(live_server: Any) -> None:
    server = await live_server()
    async with sdk(server) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-echo-1"]


async def test_stream_without_usage_ends_with_done(client: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 2, "stream": True}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    datas = [e.data for e in parse_events(response.text)]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_content_parts_and_developer_role(client: httpx.AsyncClient) -> None:
    body = {
        "model": "m",
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
    async with sdk(server) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 504
    body = caught.value.response.json()
    assert body["code"] == "generation_timeout"
    assert set(body) == {"code", "message", "request_id"}


async def test_error_mid_stream_is_an_error_chunk_then_done(client_factory: Any) -> None:
    async with client_factory(fake_llm_delay_ms=30, generation_timeout=0.1) as http:
        body = {"model": "m", "messages": MESSAGES, "max_tokens": 50, "stream": True}
        response = await http.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    datas = [e.data for e in parse_events(response.text)]
    assert datas[-1] == "[DONE]"
    error = json.loads(datas[-2])["error"]
    assert error["code"] == "generation_timeout"
    assert "request_id" in error
    assert 1 < len(datas) - 2 < 50


async def test_n_above_one_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "n": 2}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_unusable_text_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    long_parts = [{"type": "text", "text": "a" * 60_000}, {"type": "text", "text": "b" * 60_000}]
    for content in ("a\ud800b", "a" * 100_001, long_parts):
        body = {"model": "m", "messages": [{"role": "user", "content": content}]}
        # json.dumps escapes the lone surrogate as \ud800, as a client's encoder would.
        response = await client.post(
            "/api/v1/chat/completions",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, content if isinstance(content, str) else "parts"
        assert response.json()["code"] == "validation_error"


async def test_no_lax_type_coercion(client: httpx.AsyncClient) -> None:
    for extra in (
        {"max_tokens": "3"},
        {"max_tokens": True},
        {"max_tokens": 3.5},
        {"temperature": False},
        {"stream": 0},
        {"n": 1.5},
    ):
        body = {"model": "m", "messages": MESSAGES, **extra}
        response = await client.post("/api/v1/chat/completions", json=body)
        assert response.status_code == 422, extra
    stream_options = {"include_usage": 0}
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": stream_options}
    assert (await client.post("/api/v1/chat/completions", json=body)).status_code == 422


async def test_integral_numbers_are_integers(client: httpx.AsyncClient) -> None:
    # JSON has one number type, and JSON Schema's "integer" admits 3.0.
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 3.0, "n": 1.0}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 3


async def test_undecodable_body_is_a_json_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/chat/completions",
        content=b'"\xff',
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert set(response.json()) == {"code", "message", "request_id"}
