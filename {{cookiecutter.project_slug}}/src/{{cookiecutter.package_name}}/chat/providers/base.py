"""The provider protocol that the core depends on."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from ..models import ChatRequest, FinishReason


@dataclass(slots=True, frozen=True)
class ProviderUsage:
    """Token counts as the provider reports them."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True, frozen=True)
class ProviderFinish:
    """Why the provider stopped."""

    reason: FinishReason


@dataclass(slots=True, frozen=True)
class ProviderToolCall:
    """A piece of a tool call, as ``ToolCallEvent`` describes it."""

    index: int
    id: str | None
    name: str | None
    arguments: str


# A provider yields token text as plain ``str`` (the hot path), tool-call pieces,
# and at most one usage report and one finish reason.
ProviderChunk = str | ProviderToolCall | ProviderUsage | ProviderFinish


@dataclass(slots=True, frozen=True)
class GenerationParams:
    """A request with every default resolved by the core."""

    request: ChatRequest
    # The upstream's name for the model, and the name the client asked for.
    model: str
    public_model: str
    max_tokens: int


class LLMProvider(Protocol):
    name: str

    def stream(self, params: GenerationParams) -> AsyncGenerator[ProviderChunk, None]:
        """Yield chunks; raise a ``ChatError`` subclass on failure."""
        ...

    async def ready(self) -> bool:
        """Whether the provider can serve requests now (for readiness probes)."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources."""
        ...
