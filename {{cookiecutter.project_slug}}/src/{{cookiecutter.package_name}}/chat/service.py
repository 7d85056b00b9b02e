"""Run a generation: provider chunks in, typed events out.

The core owns what every transport needs the same way: default resolution,
timeouts, cancellation, usage counting, shutdown draining and one record per
generation for logs and metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .errors import (
    ChatError,
    GenerationTimeout,
    InvalidGenerationRequest,
    ModelNotFound,
    ServiceShuttingDown,
)
from .models import (
    ChatEvent,
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    FinishReason,
    TokenEvent,
    ToolCallEvent,
    UsageEvent,
)
from .providers.base import (
    GenerationParams,
    LLMProvider,
    ProviderFinish,
    ProviderToolCall,
    ProviderUsage,
)
from .tools import CalledFunction, ToolCall

logger = logging.getLogger(__name__)

# Yield to the event loop at least every 64 tokens.
CHECKPOINT_MASK = 63


@dataclass(slots=True)
class GenerationRecord:
    """What one generation did; handed to every observer when it ends."""

    transport: str
    model: str
    tokens: int = 0
    time_to_first_token: float | None = None
    duration: float = 0.0
    finish_reason: FinishReason = "stop"
    error_code: str | None = None


class GenerationObserver(Protocol):
    """Told when a generation starts and when it ends (metrics, logs)."""

    def generation_started(self, transport: str) -> None: ...

    def observe_generation(self, record: GenerationRecord) -> None: ...


@dataclass(slots=True)
class Completion:
    """A whole, non-streamed answer."""

    text: str
    usage: UsageEvent
    finish_reason: FinishReason
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)


# When a failure is raised rather than sent as an ``error`` event: never (a stream
# already answering), before the first event (a transport that has not answered
# yet can still use its own error status), or always (a whole answer).
RaiseFailures = Literal["never", "before_output", "always"]


@dataclass(slots=True)
class Generation:
    """One running generation: its first event, when the start waited for it, then the rest.

    Transports that write frames themselves hand ``first`` and ``rest`` to the
    response as they are; a wrapper per token would cost every stream.
    """

    first: ChatEvent | None
    rest: AsyncGenerator[ChatEvent, None]

    async def events(self) -> AsyncGenerator[ChatEvent, None]:
        """Every event in order, the first included."""
        if self.first is not None:
            yield self.first
        async for event in self.rest:
            yield event


@dataclass(slots=True)
class _Counters:
    active: int = 0
    observers: list[GenerationObserver] = field(default_factory=list)


class ChatService:
    """The one generation engine behind every transport."""

    def __init__(
        self,
        provider: LLMProvider,
        *,
        default_model: str,
        models: Mapping[str, str] | None = None,
        default_max_tokens: int,
        max_tokens_limit: int,
        first_token_timeout: float,
        generation_timeout: float,
        observers: Sequence[GenerationObserver] = (),
    ) -> None:
        self.provider = provider
        self._default_model = default_model
        # Public name -> the upstream's name for it; nothing else is served.
        self._models = dict(models) if models else {default_model: default_model}
        self._default_max_tokens = default_max_tokens
        self._max_tokens_limit = max_tokens_limit
        self._first_token_timeout = first_token_timeout
        self._generation_timeout = generation_timeout
        self._state = _Counters(observers=list(observers))
        self._shutdown = asyncio.Event()

    @property
    def active(self) -> int:
        """Generations running now."""
        return self._state.active

    @property
    def draining(self) -> bool:
        return self._shutdown.is_set()

    def add_observer(self, observer: GenerationObserver) -> None:
        self._state.observers.append(observer)

    def begin_shutdown(self) -> None:
        """Refuse new generations and end running ones with a final event."""
        self._shutdown.set()

    @property
    def models(self) -> list[str]:
        """The public model names this service offers."""
        return list(self._models)

    def params(self, request: ChatRequest) -> GenerationParams:
        """Resolve the request's defaults; refuse what this service does not offer.

        Raises ``ModelNotFound`` for a model not on the list (it never reaches the
        provider) and ``InvalidGenerationRequest`` for ``max_tokens`` above the limit.
        """
        name = request.model or self._default_model
        upstream = self._models.get(name)
        if upstream is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or is not offered by this service.",
                param="model",
            )
        limit = self._max_tokens_limit
        if request.max_tokens is not None and request.max_tokens > limit:
            raise InvalidGenerationRequest(
                f"max_tokens is {request.max_tokens}, above this service's limit of {limit}.",
                param="max_tokens",
            )
        return GenerationParams(
            request=request,
            model=upstream,
            public_model=name,
            max_tokens=request.max_tokens or self._default_max_tokens,
        )

    async def stream(
        self, request: ChatRequest, *, transport: str, await_first: bool = False
    ) -> Generation:
        """Start a generation; its failures arrive as an ``ErrorEvent`` then ``done``.

        With ``await_first`` the first event is awaited here, and a failure before
        it raises ``ChatError`` instead, so that a transport that has not answered
        yet can still answer with a plain error status.
        """
        params = self.params(request)
        if not await_first:
            return Generation(None, self._events(params, transport, "never"))
        events = self._events(params, transport, "before_output")
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        return Generation(first, events)

    async def complete(self, request: ChatRequest, *, transport: str) -> Completion:
        """Run a generation to the end and return the whole text; raises ``ChatError``."""
        parts: list[str] = []
        calls: dict[int, tuple[str, str, list[str]]] = {}
        usage = UsageEvent(prompt_tokens=0, completion_tokens=0)
        finish: FinishReason = "stop"
        params = self.params(request)
        async for event in self._events(params, transport, "always"):
            if isinstance(event, TokenEvent):
                parts.append(event.text)
            elif isinstance(event, ToolCallEvent):
                call_id, name, arguments = calls.setdefault(event.index, ("", "", []))
                calls[event.index] = (event.id or call_id, event.name or name, arguments)
                arguments.append(event.arguments)
            elif isinstance(event, UsageEvent):
                usage = event
            elif isinstance(event, ErrorEvent):
                raise ServiceShuttingDown(event.message)
            else:
                finish = event.finish_reason
        return Completion(
            text="".join(parts),
            usage=usage,
            finish_reason=finish,
            model=params.public_model,
            tool_calls=[
                ToolCall(
                    id=call_id,
                    type="function",
                    function=CalledFunction(name=name, arguments="".join(arguments)),
                )
                for _, (call_id, name, arguments) in sorted(calls.items())
            ],
        )

    async def _events(
        self, params: GenerationParams, transport: str, raise_failures: RaiseFailures
    ) -> AsyncGenerator[ChatEvent, None]:
        # One generator from provider chunks to events, errors included: every
        # layer of async generator costs about a microsecond per token.
        if self._shutdown.is_set():
            if raise_failures != "never":
                raise ServiceShuttingDown()
            yield ErrorEvent(ServiceShuttingDown.code, ServiceShuttingDown.default_message)
            yield DoneEvent(finish_reason="error")
            return
        request = params.request
        record = GenerationRecord(transport=transport, model=params.public_model)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._generation_timeout
        chunks = self.provider.stream(params)
        self._state.active += 1
        for observer in self._state.observers:
            observer.generation_started(transport)
        usage: ProviderUsage | None = None
        failure: ChatError | None = None
        index = 0
        try:
            try:
                async with asyncio.timeout(self._first_token_timeout):
                    chunk = await anext(chunks, None)
            except TimeoutError:
                raise GenerationTimeout() from None
            while chunk is not None:
                if type(chunk) is str:
                    if index == 0 and record.time_to_first_token is None:
                        record.time_to_first_token = loop.time() - started
                    # Counted when handed over: a stream cancelled at this yield has
                    # still sent (or queued) the token.
                    index += 1
                    yield TokenEvent(index=index - 1, text=chunk)
                    if not index & CHECKPOINT_MASK:
                        # A provider that never waits and a server whose send does
                        # not suspend would otherwise never let the event loop
                        # deliver a disconnect (or anything else) mid-stream.
                        await asyncio.sleep(0)
                    if self._shutdown.is_set():
                        record.finish_reason = "shutdown"
                        yield ErrorEvent(
                            code=ServiceShuttingDown.code,
                            message=ServiceShuttingDown.default_message,
                        )
                        yield DoneEvent(finish_reason="shutdown")
                        return
                    if loop.time() > deadline:
                        raise GenerationTimeout()
                elif isinstance(chunk, ProviderToolCall):
                    if record.time_to_first_token is None:
                        record.time_to_first_token = loop.time() - started
                    yield ToolCallEvent(chunk.index, chunk.id, chunk.name, chunk.arguments)
                    if loop.time() > deadline:
                        raise GenerationTimeout()
                elif isinstance(chunk, ProviderUsage):
                    usage = chunk
                elif isinstance(chunk, ProviderFinish):
                    record.finish_reason = chunk.reason
                chunk = await anext(chunks, None)
            if usage is None:
                prompt = sum(len(m.content.split()) for m in request.messages)
                usage = ProviderUsage(prompt_tokens=prompt, completion_tokens=index)
            yield UsageEvent(
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
            )
            yield DoneEvent(finish_reason=record.finish_reason)
        except ChatError as exc:
            failure = exc
        except (asyncio.CancelledError, GeneratorExit):
            record.finish_reason = "cancelled"
            raise
        except Exception as exc:
            # Anything unexpected from a provider is logged with its trace here and
            # reaches the client only as a generic error.
            logger.exception("provider failed", extra={"provider": self.provider.name})
            failure = ChatError()
            failure.__cause__ = exc
        finally:
            self._state.active -= 1
            record.tokens = index
            record.duration = loop.time() - started
            if failure is not None:
                record.finish_reason = "error"
                record.error_code = failure.code
            await chunks.aclose()
            for observer in self._state.observers:
                observer.observe_generation(record)
        if failure is not None:
            if raise_failures == "always" or (raise_failures == "before_output" and index == 0):
                raise failure
            yield ErrorEvent(code=failure.code, message=failure.message)
            yield DoneEvent(finish_reason="error")
