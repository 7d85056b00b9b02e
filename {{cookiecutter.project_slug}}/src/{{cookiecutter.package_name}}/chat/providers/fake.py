"""An offline, deterministic provider for development, tests and benchmarks."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncGenerator, Iterator

from ..models import FinishReason
from ..tools import NamedToolChoice
from .base import (
    GenerationParams,
    ProviderChunk,
    ProviderFinish,
    ProviderToolCall,
    ProviderUsage,
)
from .fake_json import TOKEN_CHARS, json_answer, json_tokens

FALLBACK_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet")


def prompt_words(params: GenerationParams) -> list[str]:
    """The words the fake echoes: the last user message or tool result, else a fixed phrase."""
    for message in reversed(params.request.messages):
        if message.role in ("user", "tool"):
            words = message.content.split()
            if words:
                return words
    return list(FALLBACK_WORDS)


def fake_tokens(params: GenerationParams) -> Iterator[str]:
    """Exactly ``max_tokens`` tokens derived from the prompt, cycling its words.

    Made one at a time, like a real model's: a stream holds the prompt's words,
    never a list of its whole answer (``max_tokens`` may be tens of thousands).
    A ``seed`` picks the word to start from: the same seed, the same answer.
    """
    words = prompt_words(params)
    spaced = [" " + word for word in words]
    count = len(words)
    start = (params.request.seed or 0) % count
    for index in range(params.max_tokens):
        yield spaced[(start + index) % count] if index else words[start]


def answer_tokens(params: GenerationParams) -> tuple[Iterator[str], FinishReason]:
    """The answer's tokens and why it ends, for the requested response format."""
    fmt = params.request.response_format
    if fmt is None or fmt.type == "text":
        return fake_tokens(params), "length"
    schema = fmt.json_schema.json_schema if fmt.type == "json_schema" else None
    words = prompt_words(params)
    start = (params.request.seed or 0) % len(words)
    text = json_answer(schema, words[start:] + words[:start])
    # A JSON answer ends by itself, unless max_tokens cuts it short (as a model's would).
    finish: FinishReason = "stop" if len(text) <= params.max_tokens * TOKEN_CHARS else "length"
    return itertools.islice(json_tokens(text), params.max_tokens), finish


def tool_calls_for(params: GenerationParams) -> list[tuple[str, str]]:
    """The calls the fake makes, as ``(name, arguments)``; none means it answers text.

    With ``tool_choice`` ``required`` or a named function it calls that one (or the
    tools the last user turn names, else the first); with ``auto`` it calls the
    tools the last user turn names. After a tool result it answers text. The
    arguments are valid against the tool's parameters (``fake_json``).
    """
    request = params.request
    tools = request.tools or []
    choice = request.tool_choice
    if not tools or choice == "none" or request.messages[-1].role != "user":
        return []
    said = set(request.messages[-1].content.lower().replace(",", " ").split())
    named = [tool for tool in tools if tool.function.name.lower() in said]
    if isinstance(choice, NamedToolChoice):
        chosen = [tool for tool in tools if tool.function.name == choice.function.name]
    elif choice == "required":
        chosen = named or tools[:1]
    else:
        chosen = named
    if request.parallel_tool_calls is False:
        chosen = chosen[:1]
    words = prompt_words(params)
    return [
        (tool.function.name, json_answer(tool.function.parameters or {"type": "object"}, words))
        for tool in chosen
    ]


def call_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}:{name}:{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def tool_call_chunks(
    calls: list[tuple[str, str]], max_tokens: int
) -> tuple[list[ProviderToolCall], FinishReason]:
    """Each call as its head (id, name) and argument fragments, within ``max_tokens``."""
    chunks: list[ProviderToolCall] = []
    budget = max_tokens
    for index, (name, arguments) in enumerate(calls):
        chunks.append(ProviderToolCall(index, call_id(index, name, arguments), name, ""))
        for fragment in json_tokens(arguments):
            if not budget:
                return chunks, "length"
            chunks.append(ProviderToolCall(index, None, None, fragment))
            budget -= 1
    return chunks, "tool_calls"


def held_prefix(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` could begin a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def until_stop(tokens: Iterator[str], stops: list[str]) -> Iterator[str]:
    """The tokens' text up to the first stop sequence, which is left out.

    Text that might begin a stop sequence is held back until the next token
    settles it, as a model's server does: the client never sees part of one.
    """
    held = ""
    for token in tokens:
        held += token
        cut = min((i for i in (held.find(stop) for stop in stops) if i >= 0), default=-1)
        if cut >= 0:
            if cut:
                yield held[:cut]
            raise StopSequenceFound()
        keep = held_prefix(held, stops)
        if len(held) > keep:
            yield held[: len(held) - keep]
            held = held[len(held) - keep :]
    if held:
        yield held


class StopSequenceFound(Exception):
    """The answer reached a stop sequence."""


class Counted:
    """An iterator that counts what it has handed out (the tokens a stop cut short)."""

    def __init__(self, items: Iterator[str]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        item = next(self._items)
        self.count += 1
        return item


class FakeProvider:
    """Streams the prompt's words back, exactly ``max_tokens`` of them, or up to a stop
    sequence (``finish_reason`` ``stop``); asked for JSON, it answers JSON valid
    against the schema (``fake_json``).

    ``delay_ms`` is the pause between tokens and ``first_token_delay_ms`` the pause
    before the first one; with both at zero the stream is unpaced, which is what
    throughput benchmarks want.
    """

    name = "fake"

    def __init__(self, *, delay_ms: float, first_token_delay_ms: float) -> None:
        self._delay = delay_ms / 1000
        self._first_delay = first_token_delay_ms / 1000
        self.active = 0
        self.started = 0

    async def stream(self, params: GenerationParams) -> AsyncGenerator[ProviderChunk, None]:
        self.active += 1
        self.started += 1
        try:
            if self._first_delay:
                await asyncio.sleep(self._first_delay)
            delay = self._delay
            request = params.request
            stops = request.stop
            finish: FinishReason = "length"
            completion = params.max_tokens
            calls = tool_calls_for(params)
            if calls:
                pieces, finish = tool_call_chunks(calls, params.max_tokens)
                for index, piece in enumerate(pieces):
                    if index and delay:
                        await asyncio.sleep(delay)
                    yield piece
                completion = sum(1 for piece in pieces if piece.id is None)
            elif not stops and request.response_format is None:
                # The plain path stays a bare loop: it is every benchmark's hot path.
                for index, token in enumerate(fake_tokens(params)):
                    if index and delay:
                        await asyncio.sleep(delay)
                    yield token
            else:
                source, finish = answer_tokens(params)
                made = Counted(source)
                try:
                    for index, text in enumerate(until_stop(made, stops) if stops else made):
                        if index and delay:
                            await asyncio.sleep(delay)
                        yield text
                except StopSequenceFound:
                    finish = "stop"
                completion = made.count
            prompt = sum(len(m.content.split()) for m in params.request.messages)
            yield ProviderUsage(prompt_tokens=prompt, completion_tokens=completion)
            yield ProviderFinish(finish)
        finally:
            self.active -= 1

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
