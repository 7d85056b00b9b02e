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
    body = response.json()
    assert body["code"] == code
    assert set(body) == {"code", "message", "request_id"}
    assert "sk-test-key" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"


async def test_upstream_down_is_503(client_factory: Any) -> None:
    settings = {
        "llm_provider": "openai",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "llm_max_retries": 0,
    }
    async with client_factory(**settings) as http:
        response = await http.post("/api/v1/chat/completions", json=OPENAI_CHAT)
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unavailable"


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
