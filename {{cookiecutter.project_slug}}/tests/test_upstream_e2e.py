"""The whole service on the ``openai`` provider, against a local OpenAI-compatible upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fake_upstream import (
    FakeUpstream,
    StreamScript,
    context_length_exceeded,
    rate_limited,
    server_error,
)
from sse_client import parse_events

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
OPENAI_CHAT = {"model": "gpt-test", "stream": True, **CHAT}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def provider_settings(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "llm_provider": "openai",
        "llm_base_url": upstream.base_url,
        "llm_api_key": "sk-test-key",
        "llm_model": "gpt-test",
        "llm_max_retries": 0,
        **extra,
    }


async def test_tokens_flow_through_every_http_transport(
    upstream: FakeUpstream, client_factory: Any
) -> None:
    upstream.default = StreamScript(tokens=("Hel", "lo", "!"))
    async with client_factory(**provider_settings(upstream)) as http:
        sse = await http.post("/api/v1/chat/stream", json=CHAT)
        openai_stream = await http.post("/api/v1/chat/completions", json=OPENAI_CHAT)
        whole = await http.post("/api/v1/chat/completions", json={**OPENAI_CHAT, "stream": False})
    tokens = [json.loads(e.data)["text"] for e in parse_events(sse.text) if e.event == "token"]
    assert tokens == ["Hel", "lo", "!"]
    chunks = [json.loads(e.data) for e in parse_events(openai_stream.text)[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "Hello!"
    )
    assert whole.json()["choices"][0]["message"]["content"] == "Hello!"
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-test-key"


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        (rate_limited("7"), 429, "upstream_rate_limited"),
        (context_length_exceeded(), 400, "context_length_exceeded"),
        (server_error(500), 502, "upstream_error"),
    ],
)
async def test_upstream_errors_before_the_first_token(
    upstream: FakeUpstream, client_factory: Any, script: Any, status: int, code: str
) -> None:
    upstream.enqueue(script)
    async with client_factory(**provider_settings(upstream)) as http:
        response = await http.post("/api/v1/chat/completions", json=OPENAI_CHAT)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}
    assert "sk-test-key" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"


async def test_upstream_down_is_503(client_factory: Any) -> None:
    settings = {
        "llm_provider": "openai",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "llm_model": "gpt-test",
        "llm_max_retries": 0,
    }
    async with client_factory(**settings) as http:
        response = await http.post("/api/v1/chat/completions", json=OPENAI_CHAT)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"


async def test_upstream_drop_mid_stream_is_an_error_event(
    upstream: FakeUpstream, client_factory: Any
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b", "c", "d"), drop_after=2))
    async with client_factory(**provider_settings(upstream)) as http:
        response = await http.post("/api/v1/chat/stream", json=CHAT)
    events = parse_events(response.text)
    assert [e.event for e in events] == ["token", "token", "error", "done"]
    assert json.loads(events[2].data)["code"] == "upstream_error"
    assert json.loads(events[3].data)["finish_reason"] == "error"


async def test_every_parameter_reaches_the_upstream_as_sent(
    upstream: FakeUpstream, client_factory: Any
) -> None:
    """The relay forwards what the client set, and asks for usage whatever the client asked."""
    upstream.default = StreamScript(tokens=("ok",))
    sampling = {
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "user": "user-42",
        "metadata": {"team": "search"},
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
    }
    settings = provider_settings(upstream, llm_model="public", llm_models="public=upstream-v2")
    async with client_factory(**settings) as http:
        chat = {**OPENAI_CHAT, "model": "public", "stream": False, **sampling}
        openai_answer = await http.post("/api/v1/chat/completions", json=chat)
        native = await http.post("/api/v1/chat/stream", json={**CHAT, **sampling, "stop": "END"})
        unknown = await http.post("/api/v1/chat/completions", json={**chat, "model": "upstream-v2"})
    assert openai_answer.status_code == 200, openai_answer.text
    assert openai_answer.json()["model"] == "public"
    assert native.status_code == 422  # the native API takes a list of stop sequences
    assert unknown.status_code == 404
    assert len(upstream.requests) == 1
    sent = upstream.requests[0].body
    assert {name: sent[name] for name in sampling} == sampling
    assert sent["model"] == "upstream-v2"
    assert sent["max_tokens"] == 8
    assert sent["stream_options"] == {"include_usage": True}
