"""GraphQL types, built from the REST API's Pydantic models wherever Strawberry allows.

The chat input is ``ChatRequest`` itself (its field descriptions and validation
included; its maps are JSON objects, as GraphQL has no map type); the stream
events, ``Model`` and ``Usage`` are the wire messages of ``chat/messages.py``.
Only what has no Pydantic model (the service info, a whole completion) is
declared here. The ``type`` discriminators of the wire models are left out: a
union member's ``__typename`` says the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import strawberry
from pydantic import BaseModel
from strawberry.experimental import pydantic as from_pydantic
from strawberry.scalars import JSON

from ..chat.messages import DoneMessage, ErrorMessage, ModelCard, TokenMessage, UsageMessage
from ..chat.messages import Usage as UsageModel
from ..chat.models import (
    ChatEvent,
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    Message,
    TokenEvent,
    UsageEvent,
)
from ..chat.service import Completion

M = TypeVar("M", bound=BaseModel)

if TYPE_CHECKING:
    # What Strawberry's Pydantic decorators add to a class, spelled out for mypy,
    # which sees a decorated class as written (Strawberry's mypy plugin is not
    # enabled in this project).
    class PydanticBacked(Generic[M]):
        def __init__(self, **fields: Any) -> None: ...

        def to_pydantic(self) -> M: ...

else:

    class PydanticBacked:
        def __class_getitem__(cls, model: object) -> type:
            # At run time the classes below have no base but ``object``.
            return object


# --- input ---------------------------------------------------------------------


# Tool calls and their results are not offered over GraphQL yet: its messages and
# input leave them out (so none is ever sent and dropped), as they do ``tools``.
@from_pydantic.input(model=Message, name="MessageInput", description="One turn of a conversation.")
class MessageInput(PydanticBacked[Message]):
    role: strawberry.auto
    content: strawberry.auto


@from_pydantic.input(
    model=ChatRequest,
    name="ChatInput",
    description="What to generate: the same fields as the REST ChatRequest, less tools.",
)
class ChatInput(PydanticBacked[ChatRequest]):
    messages: strawberry.auto
    model: strawberry.auto
    max_tokens: strawberry.auto
    temperature: strawberry.auto
    top_p: strawberry.auto
    stop: strawberry.auto
    seed: strawberry.auto
    presence_penalty: strawberry.auto
    frequency_penalty: strawberry.auto
    user: strawberry.auto
    # GraphQL has no map type, no input unions and no string enums from a Literal:
    # these are declared here, and ChatRequest validates them as it does for REST.
    logit_bias: JSON | None = strawberry.field(
        default=None, description="Token ID (a string) to a bias from -100 to 100."
    )
    metadata: JSON | None = strawberry.field(
        default=None, description="Up to 16 string pairs, passed to the provider."
    )
    response_format: JSON | None = strawberry.field(
        default=None,
        description=(
            'As in REST: {"type": "text"}, {"type": "json_object"}, or {"type": '
            '"json_schema", "json_schema": {"name", "schema", "strict"}}.'
        ),
    )
    reasoning_effort: str | None = strawberry.field(
        default=None,
        description="none, minimal, low, medium, high or xhigh, passed to the provider.",
    )


# --- stream events -------------------------------------------------------------


@from_pydantic.type(model=TokenMessage, name="TokenEvent", description="One generated token.")
class TokenEventType(PydanticBacked[TokenMessage]):
    index: strawberry.auto
    text: strawberry.auto


@from_pydantic.type(model=UsageMessage, name="UsageEvent", description="Token counts, once.")
class UsageEventType(PydanticBacked[UsageMessage]):
    prompt_tokens: strawberry.auto
    completion_tokens: strawberry.auto
    total_tokens: strawberry.auto


@from_pydantic.type(model=DoneMessage, name="DoneEvent", description="The last event.")
class DoneEventType(PydanticBacked[DoneMessage]):
    # A Literal on the model; GraphQL gets its values as a String.
    finish_reason: str


@from_pydantic.type(
    model=ErrorMessage, name="ErrorEvent", description="The generation failed; `done` follows."
)
class ErrorEventType(PydanticBacked[ErrorMessage]):
    code: strawberry.auto
    message: strawberry.auto
    request_id: strawberry.auto


ChatStreamEvent = Annotated[
    TokenEventType | UsageEventType | DoneEventType | ErrorEventType,
    strawberry.union(
        "ChatStreamEvent", description="TokenEvents, then one UsageEvent, then DoneEvent."
    ),
]


def stream_event(event: ChatEvent, request_id: str) -> ChatStreamEvent:
    """One core event as its GraphQL type; tokens first, they are nearly every event."""
    if type(event) is TokenEvent:
        return TokenEventType(index=event.index, text=event.text)
    if type(event) is UsageEvent:
        return UsageEventType(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            total_tokens=event.total_tokens,
        )
    if type(event) is DoneEvent:
        return DoneEventType(finish_reason=event.finish_reason)
    assert isinstance(event, ErrorEvent)
    return ErrorEventType(code=event.code, message=event.message, request_id=request_id)


# --- queries and the mutation ----------------------------------------------------


@from_pydantic.type(model=ModelCard, name="Model", description="A model this service offers.")
class ModelType(PydanticBacked[ModelCard]):
    id: strawberry.auto
    created: strawberry.auto
    owned_by: strawberry.auto


@from_pydantic.type(model=UsageModel, name="Usage", description="Token counts.")
class UsageType(PydanticBacked[UsageModel]):
    prompt_tokens: strawberry.auto
    completion_tokens: strawberry.auto
    total_tokens: strawberry.auto


@strawberry.type(description="What is serving this API.")
class ServiceInfo:
    name: str = strawberry.field(description="The service's name.")
    version: str = strawberry.field(description="The service's version.")
    environment: str = strawberry.field(description="development, test or production.")


@strawberry.type(description="A whole answer.")
class ChatCompletion:
    text: str = strawberry.field(description="The generated text.")
    model: str = strawberry.field(description="The model that answered.")
    finish_reason: str = strawberry.field(description="Why the generation ended.")
    usage: UsageType = strawberry.field(description="Token counts.")

    @classmethod
    def from_core(cls, completion: Completion) -> ChatCompletion:
        usage = completion.usage
        return cls(
            text=completion.text,
            model=completion.model,
            finish_reason=completion.finish_reason,
            usage=UsageType(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            ),
        )
