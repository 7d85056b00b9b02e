"""The subset of OpenAI's Chat Completions schema this service speaks."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from ...chat.messages import ModelCard, Usage
from ...chat.models import (
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    ChatRequest,
    Message,
    Role,
    integral_number,
)


class TextPart(BaseModel):
    type: Literal["text"] = Field(description="Only text parts are supported.", examples=["text"])
    text: str = Field(max_length=MAX_MESSAGE_CHARS, description="The text.", examples=["Hello"])


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="Author of the message; `developer` is treated as `system`.", examples=["user"]
    )
    content: str | list[TextPart] = Field(
        description="Text, or a list of text parts.", examples=["Write a haiku about streams."]
    )
    name: str | None = Field(default=None, max_length=64, description="Optional author name.")

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    @model_validator(mode="after")
    def _usable_text(self) -> OpenAIMessage:
        # The core takes one string per message: check here what it will check,
        # so that a bad message is a 422 with its location, not a failure later.
        text = self.text()
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"content is longer than {MAX_MESSAGE_CHARS} characters")
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError("content is not valid Unicode (it has a lone surrogate)") from None
        return self


class StreamOptions(BaseModel):
    include_usage: StrictBool = Field(
        default=False,
        description="Send a last chunk with token usage before `[DONE]`.",
        examples=[True],
    )


class ChatCompletionRequest(BaseModel):
    """An OpenAI Chat Completions request (text only, one choice)."""

    # Unknown OpenAI parameters are ignored rather than refused, so that SDKs
    # sending newer optional fields keep working.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=200, description="Model name.", examples=["fake-echo-1"])
    messages: list[OpenAIMessage] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="The conversation so far.",
        examples=[[{"role": "user", "content": "Write a haiku about streams."}]],
    )
    max_tokens: StrictInt | None = Field(
        default=None,
        ge=1,
        le=32_768,
        description="Deprecated OpenAI name of max_completion_tokens.",
        examples=[16],
    )
    max_completion_tokens: StrictInt | None = Field(
        default=None, ge=1, le=32_768, description="Upper bound on generated tokens.", examples=[16]
    )
    temperature: StrictFloat | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature.", examples=[0.7]
    )
    n: StrictInt = Field(
        default=1, ge=1, le=1, description="Number of choices; only 1 is supported.", examples=[1]
    )
    stream: StrictBool = Field(
        default=False, description="Stream the answer as SSE chunks.", examples=[True]
    )
    stream_options: StreamOptions | None = Field(
        default=None, description="Streaming options.", examples=[{"include_usage": True}]
    )
    user: str | None = Field(
        default=None, max_length=256, description="End-user identifier.", examples=["user-42"]
    )

    _integral = field_validator("max_tokens", "max_completion_tokens", "n", mode="before")(
        integral_number
    )

    def to_core(self) -> ChatRequest:
        return ChatRequest(
            messages=[
                Message(
                    role=Role.system if m.role == "developer" else Role(m.role), content=m.text()
                )
                for m in self.messages
            ],
            model=self.model,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = Field(
        default="assistant", description="Always `assistant`.", examples=["assistant"]
    )
    content: str = Field(description="The generated text.", examples=["Streams carry tokens"])


class Choice(BaseModel):
    index: int = Field(description="Always 0.", examples=[0])
    message: AssistantMessage = Field(description="The answer.")
    finish_reason: Literal["stop", "length"] = Field(
        description="Why generation ended.", examples=["length"]
    )


class ChatCompletion(BaseModel):
    """A whole answer (`stream: false`)."""

    id: str = Field(description="Completion ID.", examples=["chatcmpl-3f1c9a"])
    object: Literal["chat.completion"] = Field(
        default="chat.completion", description="Object type."
    )
    created: int = Field(description="Unix time of creation.", examples=[1767225600])
    model: str = Field(description="Model that answered.", examples=["fake-echo-1"])
    choices: list[Choice] = Field(description="Exactly one choice.")
    usage: Usage = Field(description="Token usage.")


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = Field(
        default=None, description="Set on the first chunk only."
    )
    content: str | None = Field(
        default=None, description="The next piece of text.", examples=[" streams"]
    )


class ChunkChoice(BaseModel):
    index: int = Field(description="Always 0.", examples=[0])
    delta: ChunkDelta = Field(description="What this chunk adds.")
    finish_reason: Literal["stop", "length"] | None = Field(description="Set on the last chunk.")


class ChatCompletionChunk(BaseModel):
    """One `data:` line of a streamed answer (`stream: true`).

    The stream ends with `data: [DONE]`.
    """

    id: str = Field(
        description="Completion ID, the same in every chunk.", examples=["chatcmpl-3f1c9a"]
    )
    object: Literal["chat.completion.chunk"] = Field(
        default="chat.completion.chunk", description="Object type."
    )
    created: int = Field(description="Unix time of creation.", examples=[1767225600])
    model: str = Field(description="Model that answers.", examples=["fake-echo-1"])
    choices: list[ChunkChoice] = Field(description="One choice, or none in the usage chunk.")
    usage: Usage | None = Field(default=None, description="Only in the usage chunk.")


class ModelList(BaseModel):
    object: Literal["list"] = Field(default="list", description="Object type.")
    data: list[ModelCard] = Field(description="Models this service offers.")
