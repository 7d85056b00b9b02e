"""Typed requests and events of the generation core."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from .formats import ResponseFormat
from .tools import MAX_TOOLS, NamedToolChoice, Tool, ToolCall, ToolChoice

MAX_MESSAGES = 256
MAX_MESSAGE_CHARS = 100_000
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
MAX_LOGIT_BIAS = 300
MAX_METADATA = 16


# Shared by every transport's request model, so that what one accepts the core accepts.
StopSequence = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]
StopSequences = Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)]
TOKEN_ID = re.compile(r"[0-9]{1,10}")


def _token_ids(value: dict[str, int]) -> dict[str, int]:
    for token in value:
        if not TOKEN_ID.fullmatch(token):
            raise ValueError(f"{token!r} is not a token ID")
    return value


# Keys are token IDs, and the JSON Schema says so (propertyNames), so that what a
# schema-driven client may send is exactly what is accepted.
LogitBias = Annotated[
    dict[str, Annotated[StrictInt, Field(ge=-100, le=100)]],
    Field(
        max_length=MAX_LOGIT_BIAS,
        json_schema_extra={"propertyNames": {"pattern": f"^{TOKEN_ID.pattern}$"}},
    ),
    AfterValidator(_token_ids),
]
Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
    Field(max_length=MAX_METADATA),
]
# JSON's safe integers: a larger one may not survive a client's JSON library.
Seed = Annotated[StrictInt, Field(ge=-(2**53), le=2**53)]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


def wire_value(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True)
    return value


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
    tool = "tool"


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    # The examples make one consistent turn (an assistant's, with a tool call), since
    # schema-driven clients compose a whole turn from its fields' examples.
    role: Role = Field(description="Who wrote the message.", examples=["assistant"])
    content: str = Field(
        max_length=MAX_MESSAGE_CHARS,
        description="The text of the message (empty on an assistant turn that only calls tools).",
        examples=["Tell me a short story about a lighthouse."],
    )
    tool_calls: list[ToolCall] | None = Field(
        default=None,
        max_length=MAX_TOOLS,
        description="On an assistant turn: the tools it called.",
        examples=[None],
    )
    tool_call_id: str | None = Field(
        default=None,
        max_length=128,
        description="On a tool turn: the call this is the result of.",
        examples=[None],
    )

    @model_validator(mode="after")
    def _fields_of_the_role(self) -> Message:
        if self.tool_calls is not None and self.role is not Role.assistant:
            raise ValueError("only an assistant turn has tool_calls")
        if (self.tool_call_id is not None) != (self.role is Role.tool):
            raise ValueError("a tool turn, and only a tool turn, needs tool_call_id")
        return self


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
    top_p: StrictFloat | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Nucleus sampling: the probability mass to sample from.",
        examples=[0.9],
    )
    stop: StopSequences | None = Field(
        default=None,
        description=(
            "Up to 4 sequences that end the answer; the answer leaves them out and "
            "finishes with `stop`."
        ),
        examples=[["\n\n"]],
    )
    seed: Seed | None = Field(
        default=None,
        description="Ask for the same answer to the same request (best effort upstream).",
        examples=[42],
    )
    presence_penalty: StrictFloat | None = Field(
        default=None,
        ge=-2.0,
        le=2.0,
        description="Penalise tokens already present.",
        examples=[0.5],
    )
    frequency_penalty: StrictFloat | None = Field(
        default=None, ge=-2.0, le=2.0, description="Penalise frequent tokens.", examples=[0.5]
    )
    logit_bias: LogitBias | None = Field(
        default=None,
        description="Token ID (as a string) to a bias from -100 to 100.",
        examples=[{"50256": -100}],
    )
    user: str | None = Field(
        default=None,
        max_length=256,
        description="An end-user identifier, passed to the provider.",
        examples=["user-42"],
    )
    metadata: Metadata | None = Field(
        default=None,
        description="Up to 16 string pairs, passed to the provider.",
        examples=[{"team": "search"}],
    )

    reasoning_effort: ReasoningEffort | None = Field(
        default=None,
        description="How hard a reasoning model thinks, passed to the provider.",
        examples=["low"],
    )

    response_format: ResponseFormat | None = Field(
        default=None,
        description=(
            "`text` (the default), `json_object` (any JSON object) or `json_schema` "
            "(JSON valid against the given schema)."
        ),
        examples=[{"type": "json_object"}],
    )

    tools: list[Tool] | None = Field(
        default=None,
        max_length=MAX_TOOLS,
        description="Functions the model may call.",
        # Consistent with the other examples (tool_choice names this one).
        examples=[
            [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ]
        ],
    )
    tool_choice: ToolChoice | None = Field(
        default=None,
        description=(
            "`none`, `auto` (the default with tools), `required`, or a named function "
            "the model must call."
        ),
        examples=["auto"],
    )
    parallel_tool_calls: StrictBool | None = Field(
        default=None,
        description="Whether the model may call several tools in one turn (default true).",
        examples=[True],
    )

    _integral = field_validator("max_tokens", "seed", mode="before")(integral_number)

    @model_validator(mode="after")
    def _tools_add_up(self) -> ChatRequest:
        names = [tool.function.name for tool in self.tools or ()]
        if len(set(names)) != len(names):
            raise ValueError("tools: two tools have the same name")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice: no tool is named {choice.function.name!r}")
        if choice == "required" and not names:
            raise ValueError("tool_choice: 'required' needs tools")
        called: set[str] = set()
        for turn in self.messages:
            for call in turn.tool_calls or ():
                called.add(call.id)
            if turn.tool_call_id is not None and turn.tool_call_id not in called:
                raise ValueError(
                    f"messages: tool_call_id {turn.tool_call_id!r} answers no earlier tool call"
                )
        return self

    def wire(self, name: str) -> Any:
        """A field as JSON-ready data (what an OpenAI-compatible upstream expects)."""
        value = getattr(self, name)
        if isinstance(value, list):
            return [wire_value(item) for item in value]
        return wire_value(value)


FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error", "shutdown"]


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


@dataclass(slots=True)
class ToolCallEvent:
    """A piece of a tool call: the first of a call has its ``id`` and ``name``, the
    rest only more of its ``arguments`` (JSON text, in fragments)."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    type: Literal["tool_call"] = "tool_call"


ChatEvent = TokenEvent | ToolCallEvent | UsageEvent | DoneEvent | ErrorEvent
