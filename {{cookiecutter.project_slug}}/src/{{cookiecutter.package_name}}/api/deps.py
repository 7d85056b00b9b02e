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

from ..asgi import request_id_of
from ..chat.service import ChatService
from ..observability.metrics import Metrics
from ..service_settings import ServiceSettings

# Each reads the app's one ``Wiring`` (``app.state.wiring``, see ``main.create_app``).


async def settings_of(connection: HTTPConnection) -> ServiceSettings:
    settings: ServiceSettings = connection.app.state.wiring.settings
    return settings


async def core_of(connection: HTTPConnection) -> ChatService:
    core: ChatService = connection.app.state.wiring.core
    return core


async def metrics_of(connection: HTTPConnection) -> Metrics:
    metrics: Metrics = connection.app.state.wiring.metrics
    return metrics


@dataclass(slots=True)
class ChatContext:
    """What a chat transport needs for one request."""

    core: ChatService
    settings: ServiceSettings
    request_id: str


async def chat_context_of(connection: HTTPConnection) -> ChatContext:
    wiring = connection.app.state.wiring
    return ChatContext(
        core=wiring.core,
        settings=wiring.settings,
        request_id=request_id_of(connection.scope),
    )


AppSettings = Annotated[ServiceSettings, Depends(settings_of)]
ChatCore = Annotated[ChatService, Depends(core_of)]
AppMetrics = Annotated[Metrics, Depends(metrics_of)]
Chat = Annotated[ChatContext, Depends(chat_context_of)]
