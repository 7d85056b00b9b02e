"""Deprecated routes, kept for old clients with ``Deprecation`` and ``Sunset`` headers.

``GET /engines`` is OpenAI's old name for ``GET /models``. Clients are told when
it goes away (RFC 8594 ``Sunset``), since when it is deprecated (RFC 9745
``Deprecation``) and where to go instead (``Link: rel="successor-version"``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import APIRouter, Response

from ..deps import AppSettings
from .openai_compat import list_models
from .openai_models import ModelList

router = APIRouter(tags=["deprecated"])

DEPRECATED_SINCE = datetime(2026, 1, 1, tzinfo=UTC)
SUNSET_AT = datetime(2027, 1, 1, tzinfo=UTC)


def mark_deprecated(response: Response, successor: str) -> None:
    response.headers["Deprecation"] = f"@{int(DEPRECATED_SINCE.timestamp())}"
    response.headers["Sunset"] = format_datetime(SUNSET_AT, usegmt=True)
    response.headers["Link"] = f'<{successor}>; rel="successor-version"'


@router.get(
    "/engines",
    response_model=ModelList,
    deprecated=True,
    summary="List models (deprecated: use /api/v1/models)",
)
async def list_engines(response: Response, settings: AppSettings) -> ModelList:
    mark_deprecated(response, "/api/v1/models")
    return await list_models(settings)
