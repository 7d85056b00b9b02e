"""Dependencies as short ``Annotated`` aliases, so route signatures read like sentences.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the
thread pool, a hand-off that cost more than the whole rest of a JSON request.

The chat transports take everything they need as one dependency (``Chat``):
FastAPI spends about 9 µs solving each dependency, at the start of every
stream, and three separate ones were an eighth of a stream's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from ..chat.service import ChatService
from ..middleware import request_id_of
from ..observability.metrics import Metrics
from ..settings import Settings


async def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


async def get_chat_service(connection: HTTPConnection) -> ChatService:
    service: ChatService = connection.app.state.chat_service
    return service


async def get_metrics(connection: HTTPConnection) -> Metrics:
    metrics: Metrics = connection.app.state.metrics
    return metrics


@dataclass(slots=True)
class ChatContext:
    """What a chat transport needs for one request."""

    core: ChatService
    settings: Settings
    request_id: str


async def get_chat_context(connection: HTTPConnection) -> ChatContext:
    state = connection.app.state
    return ChatContext(
        core=state.chat_service,
        settings=state.settings,
        request_id=request_id_of(connection.scope),
    )


AppSettings = Annotated[Settings, Depends(get_settings)]
ChatCore = Annotated[ChatService, Depends(get_chat_service)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
Chat = Annotated[ChatContext, Depends(get_chat_context)]
