"""``streaming.v1.ChatService``: the core's ``stream`` and ``complete`` over gRPC.

Failures end the call with a status (see ``status.py``); one that happens after
the first event is also sent as an ``error`` event first, so a client reading
events sees the core's code and message before the status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from pydantic import ValidationError

from ..chat.errors import ChatError
from ..chat.models import ChatRequest, ErrorEvent
from ..chat.service import ChatService
from . import chat_pb2, chat_pb2_grpc
from .convert import chat_request, completion_message, describe, event_message
from .status import abort_with_error

TRANSPORT = "grpc"


async def validated(
    message: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> ChatRequest:
    try:
        return chat_request(message)
    except ValidationError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe(exc))


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, service: ChatService) -> None:
        self._service = service

    async def StreamChat(
        self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[chat_pb2.ChatEvent]:
        chat = await validated(request, context)
        try:
            generation = await self._service.stream(chat, transport=TRANSPORT, await_first=True)
        except ChatError as exc:
            await abort_with_error(context, exc.code, exc.message, exc.retry_after)
        events = generation.events()
        try:
            async for event in events:
                yield event_message(event)
                if type(event) is ErrorEvent:
                    await abort_with_error(context, event.code, event.message)
        finally:
            # A cancelled call can leave this generator suspended at a yield;
            # closing the core's stream here ends the generation now, not at GC.
            await events.aclose()
            await generation.rest.aclose()

    async def Chat(
        self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> chat_pb2.ChatResponse:
        chat = await validated(request, context)
        try:
            completion = await self._service.complete(chat, transport=TRANSPORT)
        except ChatError as exc:
            await abort_with_error(context, exc.code, exc.message, exc.retry_after)
        return completion_message(completion)
