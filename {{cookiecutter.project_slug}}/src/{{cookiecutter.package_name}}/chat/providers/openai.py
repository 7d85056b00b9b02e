"""A provider for any OpenAI-compatible upstream: OpenAI, vLLM, Ollama, LiteLLM.

It speaks the wire format directly over one shared ``httpx.AsyncClient`` instead of
using the ``openai`` SDK, so that connection pooling, timeouts, retries and the
mapping of every failure to a ``ChatError`` stay under this service's control.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import random
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import httpx

from ..errors import (
    CapacityExceeded,
    ChatError,
    ContextTooLong,
    GenerationTimeout,
    InvalidGenerationRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from ..models import FinishReason, Message
from .base import (
    GenerationParams,
    ProviderChunk,
    ProviderFinish,
    ProviderToolCall,
    ProviderUsage,
)

if TYPE_CHECKING:
    from ...service_settings import ServiceSettings

logger = logging.getLogger(__name__)

# Statuses that mean "try again shortly" rather than "this request is wrong".
_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# A retry only makes sense while the user is still waiting for a first token; an
# upstream that asks for a longer pause gets its error passed on instead.
_MAX_RETRY_AFTER = 2.0
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 1.0
# Error bodies are read only to classify them and are never shown to clients, so a
# misbehaving upstream cannot make us buffer much.
_ERROR_BODY_LIMIT = 64 * 1024
# An upstream that ignores ``stream: true`` answers with one JSON document.
_JSON_BODY_LIMIT = 8 * 1024 * 1024
# After ``[DONE]`` the body normally ends at once; reading that end lets the
# connection go back to the pool, but a stuck upstream must not hold the stream.
_DRAIN_TIMEOUT = 1.0
_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window")
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    # The legacy name of tool calls, from servers that still send it.
    "function_call": "tool_calls",
}


class OpenAIProvider:
    """Streams chat completions from an OpenAI-compatible ``/chat/completions``.

    One instance is shared by the whole process: it owns the connection pool and a
    semaphore that caps concurrent upstream generations at ``max_concurrency``.
    ``aclose()`` closes the HTTP client, including one passed in as ``client``.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        connect_timeout: float,
        read_timeout: float,
        max_concurrency: int,
        max_retries: int,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        # Headers go on each request rather than the client so that an injected
        # client still authenticates.
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # The read timeout bounds each wait for bytes, i.e. the gap between tokens,
        # not the whole generation; the core enforces the overall deadlines.
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=connect_timeout, pool=connect_timeout
        )
        self._queue_timeout = connect_timeout
        self._max_retries = max_retries
        self._slots = asyncio.Semaphore(max_concurrency)
        if client is None:
            client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(
                    max_connections=max_concurrency, max_keepalive_connections=max_concurrency
                ),
            )
        self._client = client

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Self:
        return cls(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            connect_timeout=settings.llm_connect_timeout,
            read_timeout=settings.llm_read_timeout,
            max_concurrency=settings.llm_max_concurrency,
            max_retries=settings.llm_max_retries,
        )

    async def ready(self) -> bool:
        # Readiness probes run often; a network call each time would load the
        # upstream and make this service flap with it.
        return not self._client.is_closed

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, params: GenerationParams) -> AsyncGenerator[ProviderChunk, None]:
        await self._acquire_slot()
        try:
            payload = _payload(params)
            attempt = 0
            while True:
                opened = False
                delay: float | None = None
                try:
                    async with self._client.stream(
                        "POST",
                        self._url,
                        json=payload,
                        headers=self._headers,
                        timeout=self._timeout,
                    ) as response:
                        opened = True
                        if response.status_code != 200:
                            error, delay = await _status_error(response)
                            if delay is None or attempt >= self._max_retries:
                                raise error
                        elif _is_json(response):
                            for chunk in await _read_json(response):
                                yield chunk
                            return
                        else:
                            # Everything here is inlined rather than delegated to a
                            # nested generator: a nested one would not be closed
                            # promptly when the consumer goes away.
                            parser = _ChunkParser()
                            lines = response.aiter_lines()
                            async for line in lines:
                                if not line.startswith("data:"):
                                    continue
                                data = line[5:].strip()
                                if not data:
                                    # Some proxies send empty events as keep-alives.
                                    continue
                                if data == "[DONE]":
                                    parser.done = True
                                    break
                                token = parser.feed(data)
                                if parser.calls:
                                    for call in parser.calls:
                                        yield call
                                    parser.calls = []
                                if token:
                                    yield token
                            if parser.done:
                                with contextlib.suppress(httpx.HTTPError, TimeoutError):
                                    async with asyncio.timeout(_DRAIN_TIMEOUT):
                                        async for _ in lines:
                                            pass
                            elif parser.finish is None:
                                logger.warning("upstream stream ended before [DONE]")
                                raise UpstreamError("The model provider ended the stream early.")
                            if parser.usage is not None:
                                yield parser.usage
                            yield ProviderFinish(parser.finish or "stop")
                            return
                except httpx.HTTPError as exc:
                    error, retryable = _transport_error(exc, opened=opened)
                    if not retryable or attempt >= self._max_retries:
                        raise error from exc
                except httpx.InvalidURL as exc:
                    logger.error("LLM base URL is invalid: %s", exc)
                    raise UpstreamUnavailable() from exc
                attempt += 1
                await asyncio.sleep(_backoff(attempt, delay))
        finally:
            self._slots.release()

    async def _acquire_slot(self) -> None:
        # Waiting briefly absorbs bursts; waiting long would only turn overload into
        # timeouts further down, so past that the caller hears it at once.
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            logger.warning("no free upstream slot within %.1fs", self._queue_timeout)
            raise CapacityExceeded() from None


class _ChunkParser:
    """State of one SSE stream: the last finish reason and usage seen."""

    __slots__ = ("calls", "done", "finish", "usage")

    def __init__(self) -> None:
        self.done = False
        self.finish: FinishReason | None = None
        self.usage: ProviderUsage | None = None
        # Tool-call pieces of the last payload, for the stream to pass on.
        self.calls: list[ProviderToolCall] = []

    def feed(self, data: str) -> str | None:
        """The token text of one ``data:`` payload; records finish and usage."""
        try:
            chunk = json.loads(data)
        except ValueError:
            logger.warning("upstream sent a malformed chunk", extra={"chunk": data[:200]})
            raise UpstreamError("The model provider sent a malformed response.") from None
        if not isinstance(chunk, dict):
            logger.warning("upstream sent a non-object chunk", extra={"chunk": data[:200]})
            raise UpstreamError("The model provider sent a malformed response.")
        if chunk.get("error") is not None:
            code, message = _describe(chunk)
            logger.warning(
                "upstream reported an error mid-stream",
                extra={"upstream_code": code, "upstream_message": message[:500]},
            )
            raise UpstreamError()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage) or self.usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish = _FINISH_REASONS.get(reason, "stop")
        delta = choice.get("delta")
        if isinstance(delta, dict):
            calls = delta.get("tool_calls")
            if calls:
                self.calls = _tool_call_pieces(calls, data)
            content = delta.get("content")
            if isinstance(content, str):
                return content
        return None


def _tool_call_pieces(calls: object, data: str) -> list[ProviderToolCall]:
    """The tool-call deltas of one chunk, passed on as they came (fragments unchanged)."""
    pieces: list[ProviderToolCall] = []
    for call in calls if isinstance(calls, list) else [None]:
        if not isinstance(call, dict):
            call = {}
        function = call.get("function")
        index = call.get("index")
        if type(index) is not int or not isinstance(function, dict | None):
            logger.warning("upstream sent a malformed tool call", extra={"chunk": data[:200]})
            raise UpstreamError("The model provider sent a malformed response.")
        function = function or {}
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        pieces.append(
            ProviderToolCall(
                index,
                call_id if isinstance(call_id, str) else None,
                name if isinstance(name, str) else None,
                arguments if isinstance(arguments, str) else "",
            )
        )
    return pieces


FORWARDED = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "metadata",
    "reasoning_effort",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)


def _message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        # What OpenAI's clients send for "tool calls only".
        wire["content"] = message.content or None
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _payload(params: GenerationParams) -> dict[str, Any]:
    request = params.request
    payload: dict[str, Any] = {
        "model": params.model,
        "messages": [_message(message) for message in request.messages],
        # ``max_tokens`` rather than ``max_completion_tokens``: every compatible
        # server accepts it, the newer name is OpenAI-only.
        "max_tokens": params.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # Everything else the client set goes upstream as it came; unset fields are
    # left to the upstream's defaults.
    for name in FORWARDED:
        value = request.wire(name)
        if value is not None:
            payload[name] = value
    return payload


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for part in response.aiter_bytes():
        body += part
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def _read_json(response: httpx.Response) -> list[ProviderChunk]:
    """The chunks of a non-streamed completion, for upstreams that ignore ``stream``."""
    body = await _read_limited(response, _JSON_BODY_LIMIT)
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    choices = document.get("choices") if isinstance(document, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(choice, dict) or not isinstance(content, str | None):
        logger.warning("upstream sent a malformed completion", extra={"body": body[:200]})
        raise UpstreamError("The model provider sent a malformed response.")
    chunks: list[ProviderChunk] = [content] if content else []
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if calls:
        # A whole call is one piece: what a stream would have sent, joined.
        chunks.extend(
            _tool_call_pieces(
                [
                    {"index": index, **call} if isinstance(call, dict) else call
                    for index, call in enumerate(calls if isinstance(calls, list) else [None])
                ],
                body[:200].decode(errors="replace"),
            )
        )
    usage = document.get("usage") if isinstance(document, dict) else None
    if isinstance(usage, dict) and (parsed := _usage(usage)) is not None:
        chunks.append(parsed)
    reason = choice.get("finish_reason")
    chunks.append(
        ProviderFinish(_FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop")
    )
    return chunks


def _usage(usage: dict[Any, Any]) -> ProviderUsage | None:
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if type(prompt) is int and type(completion) is int:
        return ProviderUsage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _describe(document: object) -> tuple[str, str]:
    """``(code, message)`` of an error body in any of the shapes servers use."""
    error = document.get("error", document) if isinstance(document, dict) else document
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        return "", ""
    code = " ".join(str(error[k]) for k in ("code", "type") if isinstance(error.get(k), str))
    message = error.get("message")
    return code, message if isinstance(message, str) else ""


async def _status_error(response: httpx.Response) -> tuple[ChatError, float | None]:
    """The error for a non-200 answer and, if it is worth retrying, the pause first."""
    status = response.status_code
    body = await _read_limited(response, _ERROR_BODY_LIMIT)
    try:
        document: object = json.loads(body)
    except ValueError:
        document = body.decode("utf-8", "replace")
    code, message = _describe(document)
    retry_after = _retry_after(response.headers)
    log = logger.error if status in (401, 403) else logger.warning
    log(
        "upstream answered %s",
        status,
        extra={"upstream_code": code, "upstream_message": message[:500]},
    )
    error: ChatError
    if status == 429:
        error = UpstreamRateLimited(retry_after=retry_after)
    elif status in (400, 413, 422) and any(
        m in f"{code} {message}".lower() for m in _CONTEXT_MARKERS
    ):
        error = ContextTooLong()
    elif status in (400, 422):
        # The core has validated the request, so what the upstream still refuses
        # is a value this model does not accept (temperature, max_tokens...).
        error = InvalidGenerationRequest("The model provider rejected the request's parameters.")
    elif status == 404 and "model_not_found" in code:
        error = InvalidGenerationRequest("The requested model is not available.")
    else:
        error = UpstreamError()
    # Quota exhaustion also comes as 429 but will not clear by waiting a moment.
    if (
        status not in _RETRYABLE_STATUS
        or "insufficient_quota" in code
        or (retry_after is not None and retry_after > _MAX_RETRY_AFTER)
    ):
        return error, None
    return error, retry_after or 0.0


def _transport_error(exc: httpx.HTTPError, *, opened: bool) -> tuple[ChatError, bool]:
    """The error for a failed exchange, and whether retrying it is safe."""
    logger.warning("upstream request failed: %r", exc)
    if isinstance(exc, httpx.PoolTimeout):
        # Our own pool is full, which the semaphore should prevent; it is local
        # overload, not an upstream fault.
        return CapacityExceeded(), False
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return UpstreamUnavailable(), True
    if isinstance(exc, httpx.ReadTimeout):
        return GenerationTimeout(), False
    if not opened and isinstance(exc, httpx.TransportError):
        # The connection failed before any answer (typically a pooled keep-alive
        # connection the server had already closed), so nothing was generated.
        return UpstreamUnavailable(), not isinstance(exc, httpx.TimeoutException)
    return UpstreamError(), False


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``."""
    seconds: float | None = None
    if (millis := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            seconds = float(millis) / 1000
    if seconds is None and (value := headers.get("retry-after")) is not None:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _backoff(attempt: int, at_least: float | None) -> float:
    # Jitter spreads the retries of many streams that failed together, so they do
    # not hit a recovering upstream in one wave.
    ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (attempt - 1))
    jittered = ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security
    return max(jittered, at_least or 0.0)
