"""Dependencies as short ``Annotated`` aliases, so route signatures read like sentences.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the
thread pool, a hand-off that cost more than the whole rest of a JSON request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from ..chat.service import ChatService
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


async def get_request_id(connection: HTTPConnection) -> str:
    value = connection.scope.get("state", {}).get("request_id", "")
    return value if isinstance(value, str) else ""


AppSettings = Annotated[Settings, Depends(get_settings)]
ChatCore = Annotated[ChatService, Depends(get_chat_service)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
RequestId = Annotated[str, Depends(get_request_id)]
