"""The generation core on its own, without any transport."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncGenerator

import pytest

from {{cookiecutter.package_name}}.chat.errors import (
    ChatError,
    GenerationTimeout,
    InvalidGenerationRequest,
    ModelNotFound,
    UpstreamUnavailable,
)
from {{cookiecutter.package_name}}.chat.models import (
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    Message,
    TokenEvent,
    UsageEvent,
)
from {{cookiecutter.package_name}}.chat.providers.base import GenerationParams, ProviderChunk
from {{cookiecutter.package_name}}.chat.providers.fake import FakeProvider
from {{cookiecutter.package_name}}.chat.service import ChatService, GenerationRecord


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.records: list[GenerationRecord] = []

    def generation_started(self, transport: str) -> None:
        self.started.append(transport)

    def observe_generation(self, record: GenerationRecord) -> None:
        self.records.append(record)


class FailingProvider:
    """Fails after ``tokens`` tokens: a provider that cannot run here on purpose."""

    name = "failing"

    def __init__(self, tokens: int, error: Exception) -> None:
        self.tokens = tokens
        self.error = error

    async def stream(self, params: GenerationParams) -> AsyncGenerator[ProviderChunk, None]:
        for index in range(self.tokens):
            yield f"t{index}"
        raise self.error

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def request(
    text: str = "one two", max_tokens: int | None = 3, model: str | None = None
) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content=text)], max_tokens=max_tokens, model=model
    )


def service(
    provider: object,
    recorder: Recorder | None = None,
    *,
    first_token_timeout: float = 5,
    generation_timeout: float = 60,
) -> ChatService:
    return ChatService(
        provider,  # type: ignore[arg-type]
        default_model="fake-echo-1",
        default_max_tokens=16,
        max_tokens_limit=100,
        first_token_timeout=first_token_timeout,
        generation_timeout=generation_timeout,
        observers=[recorder] if recorder else [],
    )


async def test_stream_yields_tokens_usage_done_and_records_it() -> None:
    recorder = Recorder()
    core = service(FakeProvider(delay_ms=0, first_token_delay_ms=0), recorder)
    events = [event async for event in (await core.stream(request(), transport="unit")).rest]
    assert events == [
        TokenEvent(0, "one"),
        TokenEvent(1, " two"),
        TokenEvent(2, " one"),
        UsageEvent(prompt_tokens=2, completion_tokens=3),
        DoneEvent("length"),
    ]
    assert recorder.started == ["unit"]
    assert recorder.records[0].tokens == 3
    assert recorder.records[0].finish_reason == "length"
    assert core.active == 0


async def test_max_tokens_above_the_limit_is_refused_naming_the_field() -> None:
    provider = FakeProvider(delay_ms=0, first_token_delay_ms=0)
    core = service(provider)
    with pytest.raises(InvalidGenerationRequest) as caught:
        await core.stream(request(max_tokens=101), transport="unit")
    assert caught.value.param == "max_tokens"
    assert "100" in caught.value.message
    assert provider.started == 0
    events = [e async for e in (await core.stream(request(max_tokens=100), transport="unit")).rest]
    assert sum(isinstance(e, TokenEvent) for e in events) == 100


async def test_a_model_not_offered_is_refused_before_the_provider() -> None:
    provider = FakeProvider(delay_ms=0, first_token_delay_ms=0)
    core = ChatService(
        provider,
        default_model="public",
        models={"public": "upstream-name", "other": "other"},
        default_max_tokens=4,
        max_tokens_limit=100,
        first_token_timeout=5,
        generation_timeout=60,
    )
    with pytest.raises(ModelNotFound) as caught:
        await core.complete(request(model="gpt-9"), transport="unit")
    assert (caught.value.param, caught.value.code) == ("model", "model_not_found")
    assert provider.started == 0
    assert core.params(request()).model == "upstream-name"
    result = await core.complete(request(), transport="unit")
    assert result.model == "public"


async def test_the_fake_provider_makes_tokens_as_they_are_streamed() -> None:
    """An open stream holds its prompt's words, not its whole answer (32,768 tokens here)."""
    core = ChatService(
        FakeProvider(delay_ms=0, first_token_delay_ms=0),
        default_model="fake-echo-1",
        default_max_tokens=16,
        max_tokens_limit=32_768,
        first_token_timeout=5,
        generation_timeout=60,
    )
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        started = await core.stream(
            request("alpha beta", 32_768), transport="unit", await_first=True
        )
        held = tracemalloc.get_traced_memory()[0] - before
        assert started.first == TokenEvent(0, "alpha")
        # A list of every token would be about 1.8 MB.
        assert held < 64 * 1024
        texts = [event.text async for event in started.rest if isinstance(event, TokenEvent)]
    finally:
        tracemalloc.stop()
    assert len(texts) == 32_767
    assert texts[:3] == [" beta", " alpha", " beta"]


async def test_first_token_timeout() -> None:
    core = service(FakeProvider(delay_ms=0, first_token_delay_ms=1000), first_token_timeout=0.05)
    with pytest.raises(GenerationTimeout):
        await core.stream(request(), transport="unit", await_first=True)
    assert core.provider.active == 0  # type: ignore[attr-defined]


async def test_failure_mid_stream_becomes_error_event() -> None:
    recorder = Recorder()
    core = service(FailingProvider(2, UpstreamUnavailable()), recorder)
    events = [e async for e in (await core.stream(request(), transport="unit")).rest]
    assert events[:2] == [TokenEvent(0, "t0"), TokenEvent(1, "t1")]
    assert events[2] == ErrorEvent(
        code="upstream_unavailable", message=UpstreamUnavailable.default_message
    )
    assert events[3] == DoneEvent("error")
    assert recorder.records[0].error_code == "upstream_unavailable"


async def test_failure_before_first_token_raises_when_the_first_event_is_awaited() -> None:
    core = service(FailingProvider(0, UpstreamUnavailable()))
    with pytest.raises(UpstreamUnavailable):
        await core.stream(request(), transport="unit", await_first=True)


async def test_unexpected_provider_error_is_generic() -> None:
    core = service(FailingProvider(0, KeyError("secret internals")))
    with pytest.raises(ChatError) as caught:
        await core.complete(request(), transport="unit")
    assert type(caught.value) is ChatError
    assert "secret" not in caught.value.message


async def test_cancelling_the_consumer_stops_the_provider() -> None:
    recorder = Recorder()
    provider = FakeProvider(delay_ms=10, first_token_delay_ms=0)
    core = service(provider, recorder)

    async def consume() -> None:
        async for _ in (await core.stream(request(max_tokens=100), transport="unit")).rest:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert provider.active == 0
    assert recorder.records[0].finish_reason == "cancelled"


async def test_shutdown_ends_running_streams_and_refuses_new_ones() -> None:
    core = service(FakeProvider(delay_ms=5, first_token_delay_ms=0))
    events = []
    async for event in (await core.stream(request(max_tokens=100), transport="unit")).rest:
        events.append(event)
        if len(events) == 2:
            core.begin_shutdown()
    assert events[-2:] == [ErrorEvent("shutting_down", events[-2].message), DoneEvent("shutdown")]  # type: ignore[union-attr]
    refused = [e async for e in (await core.stream(request(), transport="unit")).rest]
    assert refused[0] == ErrorEvent("shutting_down", refused[0].message)  # type: ignore[union-attr]


async def test_complete_collects_the_whole_text() -> None:
    core = service(FakeProvider(delay_ms=0, first_token_delay_ms=0))
    result = await core.complete(request("a b c", max_tokens=3), transport="unit")
    assert result.text == "a b c"
    assert result.usage == UsageEvent(prompt_tokens=3, completion_tokens=3)
    assert result.model == "fake-echo-1"
