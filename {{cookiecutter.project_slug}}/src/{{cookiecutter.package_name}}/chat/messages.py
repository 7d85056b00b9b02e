"""The wire messages several transports share: native events, usage, model cards.

The core's events are dataclasses for speed; these models are what native SSE
``data:``, WebSocket messages and other transports' results carry, document the payloads
in the OpenAPI schema, and validate them in tests.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from .models import ChatEvent, DoneEvent, ErrorEvent, TokenEvent, ToolCallEvent, UsageEvent


class TokenMessage(BaseModel):
    type: Literal["token"] = Field(default="token", description="Event type.")
    index: int = Field(description="Position of the token in the answer, from 0.", examples=[0])
    text: str = Field(description="The token's text.", examples=[" streams"])


class ToolCallMessage(BaseModel):
    type: Literal["tool_call"] = Field(default="tool_call", description="Event type.")
    index: int = Field(description="Which call of this answer (from 0).", examples=[0])
    id: str | None = Field(description="The call's ID, in its first event.", examples=["call_0"])
    name: str | None = Field(
        description="The function, in the call's first event.", examples=["get_weather"]
    )
    arguments: str = Field(
        description="The next fragment of the call's JSON arguments.", examples=['{"ci']
    )


class UsageMessage(BaseModel):
    type: Literal["usage"] = Field(default="usage", description="Event type.")
    prompt_tokens: int = Field(description="Tokens in the prompt.", examples=[5])
    completion_tokens: int = Field(description="Tokens generated.", examples=[16])
    total_tokens: int = Field(description="Sum of both.", examples=[21])


class DoneMessage(BaseModel):
    type: Literal["done"] = Field(default="done", description="Event type.")
    finish_reason: Literal["stop", "length", "tool_calls", "cancelled", "error", "shutdown"] = (
        Field(description="Why the generation ended.", examples=["length"])
    )


class ErrorMessage(BaseModel):
    type: Literal["error"] = Field(default="error", description="Event type.")
    code: str = Field(description="Machine-readable error code.", examples=["upstream_unavailable"])
    message: str = Field(
        description="Human-readable explanation.",
        examples=["The model provider cannot be reached."],
    )
    request_id: str = Field(
        description="The request's ID.", examples=["0f8fad5b-d9cb-469f-a165-70867728950e"]
    )


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Tokens in the prompt.", examples=[5])
    completion_tokens: int = Field(description="Tokens generated.", examples=[16])
    total_tokens: int = Field(description="Sum of both.", examples=[21])


class ModelCard(BaseModel):
    id: str = Field(description="Model name.", examples=["fake-echo-1"])
    object: Literal["model"] = Field(default="model", description="Object type.")
    created: int = Field(description="Unix time.", examples=[1767225600])
    owned_by: str = Field(description="Who serves it.", examples=["streaming-service"])


StreamMessage = TokenMessage | ToolCallMessage | UsageMessage | DoneMessage | ErrorMessage


def event_json(event: ChatEvent, request_id: str) -> str:
    """Compact JSON for one core event, matching the models above.

    Built by hand for tokens, which are the hot path; the rest are rare.
    """
    if type(event) is TokenEvent:
        return f'{{"type":"token","index":{event.index},"text":{json.dumps(event.text)}}}'
    if type(event) is UsageEvent:
        return UsageMessage(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            total_tokens=event.total_tokens,
        ).model_dump_json()
    if type(event) is ToolCallEvent:
        return ToolCallMessage(
            index=event.index, id=event.id, name=event.name, arguments=event.arguments
        ).model_dump_json()
    if type(event) is DoneEvent:
        return f'{{"type":"done","finish_reason":"{event.finish_reason}"}}'
    assert isinstance(event, ErrorEvent)
    return ErrorMessage(
        code=event.code, message=event.message, request_id=request_id
    ).model_dump_json()
