"""Bidirectional chat over a WebSocket.

The client sends ``{"type": "chat", ...ChatRequest}`` to start a generation and
``{"type": "cancel"}`` to stop it; the server answers with the same
token/usage/done/error messages as the SSE stream. One generation runs at a time
per socket. Oversized messages are closed with 1009 by the server (``--ws-max-size``);
pings are uvicorn's (``WS_PING_INTERVAL``/``WS_PING_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette import status

from ...chat.errors import ChatError
from ...chat.messages import ErrorMessage, event_json
from ...chat.models import ChatRequest, DoneEvent, ErrorEvent
from ...chat.service import ChatService
from ...validation import describe_problems
from ..deps import Chat

router = APIRouter(tags=["chat"])


class ChatCommand(ChatRequest):
    """Start a generation."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["chat"] = Field(description="Command type.", examples=["chat"])


class CancelCommand(BaseModel):
    """Stop the running generation; the server answers with `done` (`cancelled`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["cancel"] = Field(description="Command type.", examples=["cancel"])


Command = Annotated[ChatCommand | CancelCommand, Field(discriminator="type")]
COMMAND = TypeAdapter(Command)


def _error(code: str, message: str, request_id: str) -> str:
    return ErrorMessage(code=code, message=message, request_id=request_id).model_dump_json()


class ChatSocket:
    """One connection: reads commands, runs at most one generation at a time."""

    def __init__(self, websocket: WebSocket, core: ChatService, request_id: str) -> None:
        self.websocket = websocket
        self.core = core
        self.request_id = request_id
        self.generation: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await self.websocket.accept()
        try:
            while True:
                raw = await self.websocket.receive_text()
                await self.handle(raw)
        except WebSocketDisconnect:
            pass
        except KeyError:
            # receive_text() on a binary frame: the message has no "text".
            await self.websocket.close(
                code=status.WS_1003_UNSUPPORTED_DATA, reason="text frames only"
            )
        finally:
            await self.stop_generation()

    async def handle(self, raw: str) -> None:
        try:
            command = COMMAND.validate_json(raw)
        except ValidationError as exc:
            problem = describe_problems(exc.errors(), limit=1)
            await self.websocket.send_text(_error("invalid_message", problem, self.request_id))
            return
        if isinstance(command, CancelCommand):
            if self.generation is None or self.generation.done():
                await self.websocket.send_text(
                    _error("nothing_to_cancel", "No generation is running.", self.request_id)
                )
            else:
                await self.stop_generation()
                await self.websocket.send_text('{"type":"done","finish_reason":"cancelled"}')
            return
        if self.generation is not None and not self.generation.done():
            await self.websocket.send_text(
                _error("busy", "A generation is already running; cancel it first.", self.request_id)
            )
            return
        request = ChatRequest.model_validate(command.model_dump(exclude={"type"}))
        self.generation = asyncio.create_task(self.generate(request))

    async def generate(self, request: ChatRequest) -> None:
        send = self.websocket.send_text
        # A client that leaves mid-stream makes send fail; the receive loop sees
        # the disconnect too and ends the connection, so there is nothing to add.
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            try:
                generation = await self.core.stream(request, transport="websocket")
            except ChatError as exc:
                # Refused before it started (an unknown model, say): the same two
                # messages as a generation that fails.
                await send(event_json(ErrorEvent(exc.code, exc.message), self.request_id))
                await send(event_json(DoneEvent("error"), self.request_id))
                return
            async for event in generation.rest:
                await send(event_json(event, self.request_id))

    async def stop_generation(self) -> None:
        task, self.generation = self.generation, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


@router.websocket("/chat/ws")
async def chat_ws(websocket: WebSocket, chat: Chat) -> None:
    await ChatSocket(websocket, chat.core, chat.request_id).run()
