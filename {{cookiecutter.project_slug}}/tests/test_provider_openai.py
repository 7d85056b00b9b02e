"""The OpenAI-compatible provider against a real HTTP server speaking the wire format."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from {{cookiecutter.package_name}}.chat.errors import (
    CapacityExceeded,
    ChatError,
    ContextTooLong,
    GenerationTimeout,
    InvalidGenerationRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from {{cookiecutter.package_name}}.chat.models import ChatRequest, FinishReason, Message, Role
from {{cookiecutter.package_name}}.chat.providers.base import (
    GenerationParams,
    ProviderChunk,
    ProviderFinish,
    ProviderUsage,
)
from {{cookiecutter.package_name}}.chat.providers.openai import OpenAIProvider
from {{cookiecutter.package_name}}.errors import http_status_of
from {{cookiecutter.package_name}}.settings import Settings

from fake_upstream import (
    ErrorScript,
    FakeUpstream,
    JSONScript,
    Script,
    StreamScript,
    bad_request,
    context_length_exceeded,
    openai_error,
    rate_limited,
    server_error,
)

API_KEY = "sk-test-key-0123456789"
SECRET_DETAIL = "SECRET-UPSTREAM-DETAIL"
DEFAULT_ANSWER: list[ProviderChunk] = [
    "Hello",
    ",",
    " world",
    ProviderUsage(prompt_tokens=7, completion_tokens=3),
    ProviderFinish("stop"),
]

ProviderFactory = Callable[..., OpenAIProvider]


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    # One server per module keeps the suite fast; ``upstream`` resets it per test.
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.reset()
    yield upstream_server
    upstream_server.release_hangs()


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[ProviderFactory]:
    providers: list[OpenAIProvider] = []

    def make(**overrides: Any) -> OpenAIProvider:
        options: dict[str, Any] = {
            "base_url": upstream.base_url,
            "api_key": API_KEY,
            "connect_timeout": 1.0,
            "read_timeout": 2.0,
            "max_concurrency": 4,
            "max_retries": 2,
            **overrides,
        }
        provider = OpenAIProvider(**options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()


def params(*, temperature: float | None = None, max_tokens: int = 16) -> GenerationParams:
    request = ChatRequest(
        messages=[
            Message(role=Role.system, content="Be brief."),
            Message(role=Role.user, content="Say hello"),
        ],
        temperature=temperature,
    )
    return GenerationParams(
        request=request, model="gpt-test", public_model="gpt-test", max_tokens=max_tokens
    )


async def collect(provider: OpenAIProvider) -> list[ProviderChunk]:
    return [chunk async for chunk in provider.stream(params())]


async def collect_until_error(provider: OpenAIProvider) -> tuple[list[ProviderChunk], ChatError]:
    chunks: list[ProviderChunk] = []
    with pytest.raises(ChatError) as caught:
        async for chunk in provider.stream(params()):
            chunks.append(chunk)
    return chunks, caught.value


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --- the happy path ---------------------------------------------------------------


async def test_streams_tokens_then_usage_then_finish(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    assert await collect(make_provider()) == DEFAULT_ANSWER
    # The server records the end just after its last byte, so it may trail the client.
    assert await upstream.wait_for(lambda: upstream.outcomes == ["completed"])


async def test_sends_the_openai_request(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    provider = make_provider(base_url=upstream.base_url + "/")
    chunks = [chunk async for chunk in provider.stream(params(temperature=0.5, max_tokens=9))]

    assert chunks == DEFAULT_ANSWER
    [request] = upstream.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        "max_tokens": 9,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
    }


async def test_without_an_api_key_sends_no_authorization(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    await collect(make_provider(api_key=""))

    [request] = upstream.requests
    assert "authorization" not in request.headers
    assert "temperature" not in request.body


@pytest.mark.parametrize(
    ("upstream_reason", "reason"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "stop"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
    ],
)
async def test_maps_finish_reasons(
    upstream: FakeUpstream,
    make_provider: ProviderFactory,
    upstream_reason: str,
    reason: FinishReason,
) -> None:
    upstream.enqueue(StreamScript(tokens=("a",), finish_reason=upstream_reason))

    assert await collect(make_provider()) == [
        "a",
        ProviderUsage(prompt_tokens=7, completion_tokens=1),
        ProviderFinish(reason),
    ]


async def test_without_a_usage_chunk_yields_no_usage(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b"), send_usage=False))

    assert await collect(make_provider()) == ["a", "b", ProviderFinish("stop")]


async def test_a_stream_with_finish_but_no_done_is_complete(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(StreamScript(tokens=("a",), send_done=False, finish_reason="length"))

    assert await collect(make_provider()) == [
        "a",
        ProviderUsage(prompt_tokens=7, completion_tokens=1),
        ProviderFinish("length"),
    ]


async def test_accepts_a_non_streamed_json_answer(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(
        JSONScript(text="Hi there", finish_reason="length", prompt_tokens=5, completion_tokens=2)
    )

    assert await collect(make_provider()) == [
        "Hi there",
        ProviderUsage(prompt_tokens=5, completion_tokens=2),
        ProviderFinish("length"),
    ]


async def test_reuses_the_connection_between_streams(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    provider = make_provider()
    await collect(provider)
    await collect(provider)

    first, second = upstream.requests
    assert first.client_port is not None
    assert first.client_port == second.client_port


# --- errors -----------------------------------------------------------------------

# Upstream words that stay in the logs: the detail planted in error bodies, the API
# key, and the token limit quoted by ``context_length_exceeded()``.
UPSTREAM_DETAILS = (SECRET_DETAIL, API_KEY, "8192")
# vLLM words a context overflow like OpenAI but without the error code.
VLLM_TOO_LONG = "This model's maximum context length is 4096 tokens and your request has 5000"
MODEL_NOT_FOUND = openai_error(
    "The model does not exist", type_="invalid_request_error", code="model_not_found"
)


@dataclass(frozen=True, slots=True)
class Failure:
    """An upstream misbehaving, and the error the provider must make of it."""

    # The answers to successive requests; a spare last one would catch a retry.
    upstream: Sequence[Script]
    error: type[ChatError]
    status: int
    retry_after: float | None = None
    # What the consumer got before the error.
    chunks: Sequence[ProviderChunk] = ()
    # Requests the upstream saw, retries included.
    requests: int = 1
    provider: Mapping[str, Any] = field(default_factory=dict)


UPSTREAM_FAILURES = {
    "429-long-retry-after-passed-on": Failure(
        [rate_limited("30")], UpstreamRateLimited, 429, retry_after=30.0
    ),
    "429-without-retry-after-retries-exhausted": Failure(
        [rate_limited(None)] * 3, UpstreamRateLimited, 429, requests=3, provider={"max_retries": 2}
    ),
    "429-quota-exhausted-not-retried": Failure(
        [rate_limited(None, code="insufficient_quota")], UpstreamRateLimited, 429
    ),
    "context-length-exceeded": Failure([context_length_exceeded()], ContextTooLong, 400),
    "context-length-by-message-alone": Failure(
        [ErrorScript(400, {"object": "error", "message": VLLM_TOO_LONG, "code": 400})],
        ContextTooLong,
        400,
    ),
    "other-400-invalid-request": Failure(
        [bad_request(f"temperature out of range {SECRET_DETAIL}")], InvalidGenerationRequest, 400
    ),
    "unknown-model-invalid-request": Failure(
        [ErrorScript(404, MODEL_NOT_FOUND)], InvalidGenerationRequest, 400
    ),
    **{
        f"{status}-upstream-error-not-retried": Failure(
            [ErrorScript(status, openai_error(SECRET_DETAIL, type_="x", code=None))],
            UpstreamError,
            502,
        )
        for status in (401, 403, 404, 500)
    },
    "500-non-json-body": Failure(
        [ErrorScript(500, f"<html>{SECRET_DETAIL}</html>")], UpstreamError, 502
    ),
    "200-json-error-document": Failure(
        [ErrorScript(200, {"error": {"message": SECRET_DETAIL}})], UpstreamError, 502
    ),
    "503-retries-exhausted": Failure(
        [server_error(503)] * 3, UpstreamError, 502, requests=3, provider={"max_retries": 2}
    ),
    "503-retries-disabled": Failure(
        [server_error(503)], UpstreamError, 502, provider={"max_retries": 0}
    ),
    "503-long-retry-after-not-retried": Failure(
        [server_error(503, retry_after="120")], UpstreamError, 502
    ),
    "slow-first-token-times-out": Failure(
        [StreamScript(first_token_delay=5)], GenerationTimeout, 504, provider={"read_timeout": 0.2}
    ),
    "slow-headers-time-out": Failure(
        [StreamScript(headers_delay=5)], GenerationTimeout, 504, provider={"read_timeout": 0.2}
    ),
    "hang-after-tokens-times-out": Failure(
        [StreamScript(tokens=("a", "b", "c"), hang_after=2), StreamScript()],
        GenerationTimeout,
        504,
        chunks=["a", "b"],
        provider={"read_timeout": 0.2},
    ),
    "dropped-mid-stream": Failure(
        [StreamScript(tokens=("a", "b", "c"), drop_after=2), StreamScript()],
        UpstreamError,
        502,
        chunks=["a", "b"],
    ),
    # The upstream accepted the request and may be generating: a retry could bill twice.
    "dropped-before-first-token-not-retried": Failure(
        [StreamScript(drop_after=0), StreamScript()], UpstreamError, 502
    ),
    "malformed-chunk": Failure(
        [StreamScript(tokens=("a", "b", "c"), malformed_after=1)], UpstreamError, 502, chunks=["a"]
    ),
    "ends-without-done-mid-generation": Failure(
        [StreamScript(tokens=("a", "b"), finish_reason=None, send_usage=False, send_done=False)],
        UpstreamError,
        502,
        chunks=["a", "b"],
    ),
}


@pytest.mark.parametrize("failure", UPSTREAM_FAILURES.values(), ids=UPSTREAM_FAILURES.keys())
async def test_upstream_failures_become_chat_errors(
    upstream: FakeUpstream, make_provider: ProviderFactory, failure: Failure
) -> None:
    upstream.enqueue(*failure.upstream)

    chunks, error = await collect_until_error(make_provider(**failure.provider))

    assert chunks == list(failure.chunks)
    assert type(error) is failure.error
    assert (http_status_of(error), error.retry_after) == (failure.status, failure.retry_after)
    assert len(upstream.requests) == failure.requests
    for detail in UPSTREAM_DETAILS:
        assert detail not in str(error)
        assert detail not in error.message


async def test_429_retry_after_as_an_http_date(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(rate_limited(email.utils.formatdate(time.time() + 60, usegmt=True)))

    _, error = await collect_until_error(make_provider())

    assert type(error) is UpstreamRateLimited
    assert error.retry_after is not None
    assert 55 <= error.retry_after <= 61


async def test_429_with_a_short_retry_after_is_retried(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(rate_limited("0"))

    assert await collect(make_provider()) == DEFAULT_ANSWER
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_errors_are_retried_before_the_first_token(
    upstream: FakeUpstream, make_provider: ProviderFactory, status: int
) -> None:
    upstream.enqueue(server_error(status))

    assert await collect(make_provider()) == DEFAULT_ANSWER
    assert len(upstream.requests) == 2


async def test_unreachable_upstream_is_unavailable(make_provider: ProviderFactory) -> None:
    provider = make_provider(base_url=closed_port_url(), max_retries=1)

    _, error = await collect_until_error(provider)

    assert type(error) is UpstreamUnavailable
    assert http_status_of(error) == 503


# --- cancellation and capacity ---------------------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream_stream(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b", "c"), hang_after=2))
    provider = make_provider(read_timeout=10)
    seen: list[ProviderChunk] = []
    two_tokens = asyncio.Event()

    async def consume() -> None:
        async for chunk in provider.stream(params()):
            seen.append(chunk)
            if len(seen) == 2:
                two_tokens.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_tokens.wait(), timeout=2)
    assert upstream.open_streams == 1

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await upstream.wait_for(lambda: upstream.disconnects == 1, timeout=1)

    assert time.monotonic() - cancelled_at < 0.1
    assert upstream.open_streams == 0
    assert seen == ["a", "b"]


async def test_closing_the_generator_closes_the_upstream_stream(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b", "c"), token_delay=5))
    chunks = make_provider(read_timeout=10).stream(params())
    assert await anext(chunks) == "a"

    closed_at = time.monotonic()
    await chunks.aclose()
    assert await upstream.wait_for(lambda: upstream.disconnects == 1, timeout=1)

    assert time.monotonic() - closed_at < 0.1


async def test_a_first_token_deadline_in_the_caller_releases_the_upstream(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # The core wraps the first ``anext`` in ``asyncio.timeout``, which cancels us.
    upstream.enqueue(StreamScript(first_token_delay=5))
    chunks = make_provider(read_timeout=10).stream(params())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await anext(chunks)
    timed_out_at = time.monotonic()
    await chunks.aclose()
    assert await upstream.wait_for(lambda: upstream.disconnects == 1, timeout=1)

    assert time.monotonic() - timed_out_at < 0.1


async def test_the_concurrency_cap_raises_capacity_exceeded(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b"), hang_after=1))
    provider = make_provider(max_concurrency=1, connect_timeout=0.2)
    first = provider.stream(params())
    assert await anext(first) == "a"

    waited_from = time.monotonic()
    with pytest.raises(CapacityExceeded) as caught:
        await anext(provider.stream(params()))

    assert 0.15 <= time.monotonic() - waited_from < 1
    assert http_status_of(caught.value) == 503
    assert len(upstream.requests) == 1
    await first.aclose()
    assert await collect(provider) == DEFAULT_ANSWER


async def test_a_queued_stream_gets_a_slot_freed_in_time(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(StreamScript(tokens=("a", "b"), hang_after=1))
    provider = make_provider(max_concurrency=1, connect_timeout=1)
    first = provider.stream(params())
    assert await anext(first) == "a"

    waiting = asyncio.create_task(collect(provider))
    await asyncio.sleep(0.05)
    await first.aclose()

    assert await waiting == DEFAULT_ANSWER


async def test_failures_release_their_slot(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.enqueue(server_error(500), StreamScript(tokens=("a",), malformed_after=0))
    provider = make_provider(max_concurrency=1, connect_timeout=0.2)

    for _ in range(2):
        _, error = await collect_until_error(provider)
        assert type(error) is UpstreamError
    assert await collect(provider) == DEFAULT_ANSWER


# --- lifecycle ------------------------------------------------------------------


async def test_ready_until_closed(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    assert await provider.ready() is True

    await provider.aclose()

    assert await provider.ready() is False


async def test_from_settings(upstream: FakeUpstream) -> None:
    settings = Settings.model_construct(
        llm_provider="openai",
        llm_base_url=upstream.base_url,
        llm_api_key=SecretStr("sk-from-settings"),
        llm_max_concurrency=3,
    )
    provider = OpenAIProvider.from_settings(settings)
    try:
        assert await collect(provider) == DEFAULT_ANSWER
    finally:
        await provider.aclose()

    assert upstream.requests[0].headers["authorization"] == "Bearer sk-from-settings"
