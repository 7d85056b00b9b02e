"""Everything served under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from . import chat_sse, chat_ws, legacy, openai_compat

router = APIRouter()
router.include_router(chat_sse.router)
router.include_router(openai_compat.router)
router.include_router(chat_ws.router)
router.include_router(legacy.router)
