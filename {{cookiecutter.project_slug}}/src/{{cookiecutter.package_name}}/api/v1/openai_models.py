"""The subset of OpenAI's Chat Completions schema this service speaks."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ...chat.formats import ResponseFormat
from ...chat.messages import ModelCard, Usage
from ...chat.models import (
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    ChatRequest,
    LogitBias,
    Message,
    Metadata,
    ReasoningEffort,
    Role,
    Seed,
    StopSequence,
    StopSequences,
    integral_number,
)
from ...chat.tools import MAX_TOOLS, Tool, ToolCall, ToolChoice
from ...validation import describe_problems


class TextPart(BaseModel):
    type: Literal["text"] = Field(description="Only text parts are supported.", examples=["text"])
    text: str = Field(max_length=MAX_MESSAGE_CHARS, description="The text.", examples=["Hello"])


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"] = Field(
        description="Author of the message; `developer` is treated as `system`.", examples=["user"]
    )
    content: str | list[TextPart] | None = Field(
        default=None,
        description="Text, or a list of text parts; null on an assistant turn with tool calls.",
        examples=["Write a haiku about streams."],
    )
    name: str | None = Field(
        default=None, max_length=64, description="Optional author name.", examples=[None]
    )
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="An assistant turn's tool calls.", examples=[None]
    )
    tool_call_id: str | None = Field(
        default=None, max_length=128, description="A tool turn's call.", examples=[None]
    )
    refusal: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE_CHARS,
        description="An assistant turn's refusal, as an earlier answer returned it.",
        examples=[None],
    )

    def text(self) -> str:
        if self.content is None:
            return self.refusal or ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def to_core(self) -> Message:
        role = Role.system if self.role == "developer" else Role(self.role)
        return Message(
            role=role,
            content=self.text(),
            tool_calls=self.tool_calls,
            tool_call_id=self.tool_call_id,
        )

    @model_validator(mode="after")
    def _usable_text(self) -> OpenAIMessage:
        # The core takes one string per message: check here what it will check,
        # so that a bad message is a 400 with its location, not a failure later.
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required, except on an assistant turn with tool_calls")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only an assistant turn has tool_calls")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("a tool turn, and only a tool turn, needs tool_call_id")
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


# Chat Completions parameters this service does not serve yet, and the values
# that ask for nothing (what a client may send by default). Any other value is a
# 400 that names the field: a 200 that ignored it would be an answer the client
# did not ask for.
UNSUPPORTED: dict[str, tuple[object, ...]] = {
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "web_search_options": (None,),
    "store": (None, False),
    "service_tier": (None, "auto", "default"),
}


class ChatCompletionRequest(BaseModel):
    """An OpenAI Chat Completions request.

    Every field is honoured, forwarded to the provider, or refused with a 400
    that names it; unknown fields are refused too.
    """

    model_config = ConfigDict(extra="forbid")
    _core: ChatRequest = PrivateAttr()

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
    top_p: StrictFloat | None = Field(
        default=None, ge=0, le=1, description="Nucleus sampling mass.", examples=[0.9]
    )
    stop: StopSequence | StopSequences | None = Field(
        default=None,
        description="A sequence, or up to 4, that end the answer (left out of it).",
        examples=[["\n\n"]],
    )
    seed: Seed | None = Field(
        default=None, description="Same seed, same answer (best effort upstream).", examples=[42]
    )
    presence_penalty: StrictFloat | None = Field(
        default=None, ge=-2, le=2, description="Penalise tokens already present.", examples=[0.5]
    )
    frequency_penalty: StrictFloat | None = Field(
        default=None, ge=-2, le=2, description="Penalise frequent tokens.", examples=[0.5]
    )
    logit_bias: LogitBias | None = Field(
        default=None,
        description="Token ID (a string) to a bias from -100 to 100.",
        examples=[{"50256": -100}],
    )
    metadata: Metadata | None = Field(
        default=None, description="Up to 16 string pairs.", examples=[{"team": "search"}]
    )
    tools: list[Tool] | None = Field(
        default=None,
        max_length=MAX_TOOLS,
        description="Functions the model may call.",
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
        description='`none`, `auto`, `required`, or `{"type": "function", "function": {"name"}}`.',
        examples=["auto"],
    )
    parallel_tool_calls: StrictBool | None = Field(
        default=None,
        description="Whether the model may call several tools at once.",
        examples=[True],
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        description=(
            "`text`, `json_object` or `json_schema` (with `strict`): the answer is JSON "
            "valid against the schema."
        ),
        examples=[{"type": "json_object"}],
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None, description="How hard a reasoning model thinks.", examples=["low"]
    )
    # Parameters not served yet (see UNSUPPORTED): accepted only with values that ask
    # for nothing.
    functions: object = Field(
        default=None, description="Not supported: must be empty.", examples=[[]]
    )
    function_call: object = Field(
        default=None, description="`none` or `auto` only.", examples=["none"]
    )
    logprobs: object = Field(
        default=None, description="Not supported yet: must be false.", examples=[False]
    )
    top_logprobs: object = Field(
        default=None, description="Not supported yet: must be 0.", examples=[0]
    )
    modalities: object = Field(default=None, description='Only `["text"]`.', examples=[["text"]])
    audio: object = Field(default=None, description="Not supported.", examples=[None])
    prediction: object = Field(default=None, description="Not supported.", examples=[None])
    web_search_options: object = Field(default=None, description="Not supported.", examples=[None])
    store: object = Field(
        default=None, description="This service stores nothing: false only.", examples=[False]
    )
    service_tier: object = Field(
        default=None, description="`auto` or `default` only.", examples=["auto"]
    )

    _integral = field_validator("max_tokens", "max_completion_tokens", "n", "seed", mode="before")(
        integral_number
    )

    @field_validator(*UNSUPPORTED)
    @classmethod
    def _refuse_unsupported(cls, value: object, info: ValidationInfo) -> object:
        allowed = UNSUPPORTED[str(info.field_name)]
        if any(value == harmless and type(value) is type(harmless) for harmless in allowed):
            return value
        raise ValueError(f"{info.field_name} is not supported by this service")

    @model_validator(mode="after")
    def _valid_for_the_core(self) -> ChatCompletionRequest:
        # Built here, while validating, so that what the core refuses (a tool_choice
        # naming no tool, a result answering no call) is this request's 400.
        try:
            self._core = self._build_core()
        except ValidationError as exc:
            raise ValueError(describe_problems(exc.errors(), limit=3)) from None
        return self

    def to_core(self) -> ChatRequest:
        return self._core

    def _build_core(self) -> ChatRequest:
        return ChatRequest(
            messages=[message.to_core() for message in self.messages],
            model=self.model,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=[self.stop] if isinstance(self.stop, str) else self.stop,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=self.logit_bias,
            user=self.user,
            metadata=self.metadata,
            reasoning_effort=self.reasoning_effort,
            response_format=self.response_format,
            tools=self.tools,
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = Field(
        default="assistant", description="Always `assistant`.", examples=["assistant"]
    )
    content: str | None = Field(
        description="The generated text; null when the answer is only tool calls.",
        examples=["Streams carry tokens"],
    )
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="The tools the model called, if any.", examples=[None]
    )


class Choice(BaseModel):
    index: int = Field(description="Always 0.", examples=[0])
    message: AssistantMessage = Field(description="The answer.")
    finish_reason: Literal["stop", "length", "tool_calls"] = Field(
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


class FunctionDelta(BaseModel):
    name: str | None = Field(
        default=None, description="In a call's first piece.", examples=["get_weather"]
    )
    arguments: str = Field(
        description="The next fragment of the JSON arguments.", examples=['{"ci']
    )


class ToolCallDelta(BaseModel):
    index: int = Field(description="Which call of this turn (from 0).", examples=[0])
    id: str | None = Field(
        default=None, description="In a call's first piece.", examples=["call_0"]
    )
    type: Literal["function"] | None = Field(
        default=None, description="In a call's first piece.", examples=["function"]
    )
    function: FunctionDelta = Field(description="The name and a fragment of the arguments.")


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = Field(
        default=None, description="Set on the first chunk only."
    )
    content: str | None = Field(
        default=None, description="The next piece of text.", examples=[" streams"]
    )
    tool_calls: list[ToolCallDelta] | None = Field(
        default=None, description="The next piece of one tool call.", examples=[None]
    )


class ChunkChoice(BaseModel):
    index: int = Field(description="Always 0.", examples=[0])
    delta: ChunkDelta = Field(description="What this chunk adds.")
    finish_reason: Literal["stop", "length", "tool_calls"] | None = Field(
        description="Set on the last chunk."
    )


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
