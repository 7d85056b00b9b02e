"""OpenAI-compatible Chat Completions: the official SDKs work against ``/api/v1``."""

from __future__ import annotations

import json
import time
import uuid
from json.encoder import encode_basestring_ascii
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...asgi import unless_disconnected
from ...chat.errors import ChatError, ModelNotFound
from ...chat.messages import ModelCard, Usage
from ...chat.models import (
    ChatEvent,
    DoneEvent,
    ErrorEvent,
    TokenEvent,
    ToolCallEvent,
    UsageEvent,
)
from ...errors import HTTP_STATUS_BY_CODE, OPENAI_ERROR_RESPONSES, OpenAIErrorBody, openai_error
from ...service_settings import ServiceSettings
from ..deps import AppSettings, Chat, ChatContext
from ..openapi import json_text, schema_ref, sse_event_schema
from ..sse import SSEResponse
from .openai_models import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ModelList,
)

router = APIRouter(tags=["openai"])

DONE_FRAME = b"data: [DONE]\n\n"
# What a stream that fails after its first chunk sends before [DONE].
STREAM_ERROR_CHUNK = schema_ref(OpenAIErrorBody)
TOKEN_TAIL = b'},"finish_reason":null}]}\n\n'


def _finish(reason: str) -> Literal["stop", "length", "tool_calls"]:
    if reason == "length":
        return "length"
    if reason == "tool_calls":
        return "tool_calls"
    return "stop"


class OpenAIChunks:
    """Core events as OpenAI ``chat.completion.chunk`` frames.

    ``preamble`` is the role chunk that opens the stream and ``DONE_FRAME`` ends
    it; ``format`` turns each event into its frame(s).
    """

    def __init__(
        self, *, completion_id: str, model: str, include_usage: bool, request_id: str
    ) -> None:
        created = int(time.time())
        self.head = (
            f'{{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},'
            f'"model":{json.dumps(model)},"choices":['
        )
        # The per-token frame is built from fixed pieces: serialising a model per
        # token would cost more than everything else on this path.
        self.token_head = f'data: {self.head}{{"index":0,"delta":{{"content":'.encode()
        role = '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
        self.preamble = f"data: {self.head}{role}\n\n".encode()
        self.include_usage = include_usage
        self.request_id = request_id
        self.usage_pending = b""

    def format(self, event: ChatEvent) -> bytes:
        if type(event) is TokenEvent:
            return self.token_head + encode_basestring_ascii(event.text).encode() + TOKEN_TAIL
        if type(event) is ToolCallEvent:
            call: dict[str, object] = {"index": event.index}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            function: dict[str, object] = {"arguments": event.arguments}
            if event.name is not None:
                function["name"] = event.name
            call["function"] = function
            delta = json.dumps({"tool_calls": [call]}, separators=(",", ":"))
            piece = f'{{"index":0,"delta":{delta},"finish_reason":null}}]}}'
            return f"data: {self.head}{piece}\n\n".encode()
        if type(event) is UsageEvent:
            if self.include_usage:
                usage = Usage(
                    prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens,
                    total_tokens=event.total_tokens,
                )
                frame = f'{self.head}],"usage":{usage.model_dump_json()}}}'
                self.usage_pending = f"data: {frame}\n\n".encode()
            return b""
        if type(event) is DoneEvent:
            if event.finish_reason not in ("stop", "length", "tool_calls"):
                return b""
            last = f'{{"index":0,"delta":{{}},"finish_reason":"{_finish(event.finish_reason)}"}}]}}'
            return f"data: {self.head}{last}\n\n".encode() + self.usage_pending
        assert isinstance(event, ErrorEvent)
        status = HTTP_STATUS_BY_CODE.get(event.code, 500)
        error = openai_error(status, event.code, event.message, self.request_id, None)
        return f"data: {json.dumps(error)}\n\n".encode()


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="Create a chat completion (OpenAI-compatible)",
    responses={
        200: {
            "description": "A completion, or with `stream: true` a `text/event-stream` of chunks.",
            "content": {
                "text/event-stream": {
                    # Unnamed events: ChatCompletionChunk JSON, an `{"error": ...}`
                    # chunk if it fails mid-stream, then `[DONE]`.
                    "schema": sse_event_schema(
                        {
                            "anyOf": [
                                json_text(
                                    {
                                        "anyOf": [
                                            schema_ref(ChatCompletionChunk),
                                            STREAM_ERROR_CHUNK,
                                        ]
                                    }
                                ),
                                {"const": "[DONE]"},
                            ]
                        }
                    ),
                }
            },
        },
        **OPENAI_ERROR_RESPONSES,
    },
    openapi_extra={"x-stream-chunk-model": ChatCompletionChunk.__name__},
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    chat: Chat,
) -> Response | ChatCompletion:
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    try:
        return await _answer(body, request, chat, completion_id)
    except ChatError as exc:
        # The core names its own field; the client may have used the newer name.
        if exc.param == "max_tokens" and body.max_completion_tokens is not None:
            exc.param = "max_completion_tokens"
        raise


async def _answer(
    body: ChatCompletionRequest, request: Request, chat: ChatContext, completion_id: str
) -> Response | ChatCompletion:
    chat_request = body.to_core()
    if body.stream:
        # Wait for the first token before answering, so that a failure before it
        # is still a proper error status instead of a broken stream.
        generation = await unless_disconnected(
            request, chat.core.stream(chat_request, transport="openai", await_first=True)
        )
        chunks = OpenAIChunks(
            completion_id=completion_id,
            model=body.model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            request_id=chat.request_id,
        )
        return SSEResponse(
            generation,
            format=chunks.format,
            preamble=chunks.preamble,
            epilogue=DONE_FRAME,
            keepalive_seconds=chat.settings.sse_keepalive_seconds,
        )
    result = await unless_disconnected(
        request, chat.core.complete(chat_request, transport="openai")
    )
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=body.model,
        choices=[
            Choice(
                index=0,
                message=AssistantMessage(
                    # OpenAI's clients read a null content as "tool calls only".
                    content=result.text if result.text or not result.tool_calls else None,
                    tool_calls=result.tool_calls or None,
                ),
                finish_reason=_finish(result.finish_reason),
            )
        ],
        usage=Usage(
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            total_tokens=result.usage.total_tokens,
        ),
    )


def model_card(name: str, settings: ServiceSettings) -> ModelCard:
    return ModelCard(id=name, created=0, owned_by=settings.app_name)


@router.get(
    "/models",
    response_model=ModelList,
    summary="List models (OpenAI-compatible)",
    responses=OPENAI_ERROR_RESPONSES,
)
async def list_models(settings: AppSettings) -> ModelList:
    return ModelList(data=[model_card(name, settings) for name in settings.models])


@router.get(
    "/models/{model_id:path}",
    response_model=ModelCard,
    summary="Retrieve a model (OpenAI-compatible)",
    responses=OPENAI_ERROR_RESPONSES,
)
async def retrieve_model(model_id: str, settings: AppSettings) -> ModelCard:
    if model_id not in settings.models:
        raise ModelNotFound(
            f"The model `{model_id}` does not exist or is not offered by this service.",
            param="model",
        )
    return model_card(model_id, settings)
