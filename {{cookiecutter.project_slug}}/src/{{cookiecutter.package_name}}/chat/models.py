"""Typed requests and events of the generation core."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

MAX_MESSAGES = 256
MAX_MESSAGE_CHARS = 100_000


def integral_number(value: object) -> object:
    """For a strict integer field of a JSON body: 16 or 16.0, never "16", true or 16.5.

    JSON has one number type, and JSON Schema's "integer" admits 16.0.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Role(StrEnum):
    system = "system"
    user = "user"
    assistant = "assistant"


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="Who wrote the message.", examples=["user"])
    content: str = Field(
        max_length=MAX_MESSAGE_CHARS,
        description="The text of the message.",
        examples=["Tell me a short story about a lighthouse."],
    )


class ChatRequest(BaseModel):
    """What the core needs to run one generation, whatever the transport."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="The conversation so far, oldest first.",
        examples=[[{"role": "user", "content": "Tell me a short story."}]],
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="Model name; the configured default when omitted.",
        examples=["fake-echo-1"],
    )
    max_tokens: StrictInt | None = Field(
        default=None,
        ge=1,
        le=32_768,
        description="Upper bound on generated tokens; the configured default when omitted.",
        examples=[16],
    )
    temperature: StrictFloat | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature, passed to the provider.",
        examples=[0.7],
    )

    _integral = field_validator("max_tokens", mode="before")(integral_number)


FinishReason = Literal["stop", "length", "cancelled", "error", "shutdown"]


# The events are slotted dataclasses rather than Pydantic models: one is built per
# streamed token, and on the hot path a dataclass costs a fraction of a model.
# They are not frozen, because a frozen dataclass's __init__ is about three times
# slower; nothing mutates them.
@dataclass(slots=True)
class TokenEvent:
    index: int
    text: str
    type: Literal["token"] = "token"


@dataclass(slots=True)
class UsageEvent:
    prompt_tokens: int
    completion_tokens: int
    type: Literal["usage"] = "usage"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class DoneEvent:
    finish_reason: FinishReason
    type: Literal["done"] = "done"


@dataclass(slots=True)
class ErrorEvent:
    code: str
    message: str
    type: Literal["error"] = "error"


ChatEvent = TokenEvent | UsageEvent | DoneEvent | ErrorEvent
