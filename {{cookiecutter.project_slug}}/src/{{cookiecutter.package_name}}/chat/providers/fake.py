"""An offline, deterministic provider for development, tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator

from .base import GenerationParams, ProviderChunk, ProviderFinish, ProviderUsage

FALLBACK_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet")


def prompt_words(params: GenerationParams) -> list[str]:
    """The words the fake echoes: the last user message, else a fixed phrase."""
    for message in reversed(params.request.messages):
        if message.role == "user":
            words = message.content.split()
            if words:
                return words
    return list(FALLBACK_WORDS)


def fake_tokens(params: GenerationParams) -> Iterator[str]:
    """Exactly ``max_tokens`` tokens derived from the prompt, cycling its words.

    Made one at a time, like a real model's: a stream holds the prompt's words,
    never a list of its whole answer (``max_tokens`` may be tens of thousands).
    """
    words = prompt_words(params)
    spaced = [" " + word for word in words]
    count = len(words)
    for index in range(params.max_tokens):
        yield spaced[index % count] if index else words[0]


class FakeProvider:
    """Streams the prompt's words back, exactly ``max_tokens`` of them.

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
            for index, token in enumerate(fake_tokens(params)):
                if index and delay:
                    await asyncio.sleep(delay)
                yield token
            prompt = sum(len(m.content.split()) for m in params.request.messages)
            yield ProviderUsage(prompt_tokens=prompt, completion_tokens=params.max_tokens)
            yield ProviderFinish("length")
        finally:
            self.active -= 1

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
