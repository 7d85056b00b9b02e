"""Protobuf messages to and from the core's request and events."""

from __future__ import annotations

import json

from pydantic import ValidationError

from ..chat.models import ChatEvent, ChatRequest, DoneEvent, ErrorEvent, TokenEvent, UsageEvent
from ..chat.service import Completion
from ..validation import describe_problems
from . import chat_pb2

ROLES: dict[int, str] = {
    chat_pb2.ROLE_SYSTEM: "system",
    chat_pb2.ROLE_USER: "user",
    chat_pb2.ROLE_ASSISTANT: "assistant",
}


def chat_request(message: chat_pb2.ChatRequest) -> ChatRequest:
    """The core's request, validated by the same model as HTTP; raises ``ValidationError``.

    An unset ``optional`` field is ``None`` (the configured default), so that an
    explicit 0 is refused rather than mistaken for "not given".
    """
    return ChatRequest.model_validate(
        {
            # ROLE_UNSPECIFIED becomes None, which the model refuses by name.
            "messages": [
                {"role": ROLES.get(turn.role), "content": turn.content} for turn in message.messages
            ],
            "model": message.model if message.HasField("model") else None,
            "max_tokens": message.max_tokens if message.HasField("max_tokens") else None,
            "temperature": message.temperature if message.HasField("temperature") else None,
            "top_p": message.top_p if message.HasField("top_p") else None,
            # Repeated and map fields have no presence: empty means not given.
            "stop": list(message.stop) or None,
            "seed": message.seed if message.HasField("seed") else None,
            "presence_penalty": (
                message.presence_penalty if message.HasField("presence_penalty") else None
            ),
            "frequency_penalty": (
                message.frequency_penalty if message.HasField("frequency_penalty") else None
            ),
            "logit_bias": dict(message.logit_bias) or None,
            "user": message.user if message.HasField("user") else None,
            "metadata": dict(message.metadata) or None,
            "reasoning_effort": (
                message.reasoning_effort if message.HasField("reasoning_effort") else None
            ),
            "response_format": (
                response_format(message.response_format)
                if message.HasField("response_format")
                else None
            ),
        }
    )


def response_format(message: chat_pb2.ResponseFormat) -> dict[str, object]:
    """The REST shape of a response format; the model validates it (and the schema)."""
    if message.type != "json_schema":
        return {"type": message.type}
    try:
        schema: object = json.loads(message.schema_json)
    except ValueError:
        # Refused by the model by name, like any other bad value.
        schema = message.schema_json
    spec: dict[str, object] = {"name": message.name, "schema": schema}
    if message.HasField("strict"):
        spec["strict"] = message.strict
    return {"type": "json_schema", "json_schema": spec}


def describe(error: ValidationError) -> str:
    """``messages: List should have at least 1 item ...``: field paths as in the .proto."""
    return describe_problems(error.errors())


def usage_message(event: UsageEvent) -> chat_pb2.Usage:
    return chat_pb2.Usage(
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        total_tokens=event.total_tokens,
    )


def event_message(event: ChatEvent) -> chat_pb2.ChatEvent:
    if type(event) is TokenEvent:
        return chat_pb2.ChatEvent(token=chat_pb2.Token(index=event.index, text=event.text))
    if type(event) is UsageEvent:
        return chat_pb2.ChatEvent(usage=usage_message(event))
    if type(event) is DoneEvent:
        return chat_pb2.ChatEvent(done=chat_pb2.Done(finish_reason=event.finish_reason))
    assert isinstance(event, ErrorEvent)
    return chat_pb2.ChatEvent(error=chat_pb2.Error(code=event.code, message=event.message))


def completion_message(completion: Completion) -> chat_pb2.ChatResponse:
    return chat_pb2.ChatResponse(
        text=completion.text,
        usage=usage_message(completion.usage),
        finish_reason=completion.finish_reason,
        model=completion.model,
    )
