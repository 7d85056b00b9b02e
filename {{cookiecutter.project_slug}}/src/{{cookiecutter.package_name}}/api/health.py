"""Liveness, readiness and Prometheus metrics, outside the versioned API."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..errors import ErrorBody, error_response
from ..lifecycle import ReadinessCheck
from .deps import AppMetrics, ChatCore

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0


class Liveness(BaseModel):
    status: Literal["ok"] = Field(
        description="Always `ok` while the process serves.", examples=["ok"]
    )


class Readiness(BaseModel):
    status: Literal["ready"] = Field(
        description="`ready` when every check passed.", examples=["ready"]
    )
    checks: dict[str, Literal["ok"]] = Field(
        description="Each dependency checked and its state.", examples=[{"provider": "ok"}]
    )


async def _run_check(check: ReadinessCheck) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await check()
    except Exception:
        return False


@router.get("/healthz", response_model=Liveness, summary="Liveness probe")
async def healthz() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness probe: checks what this service depends on",
    responses={
        503: {"model": ErrorBody, "description": "A dependency is down or the service is draining."}
    },
)
async def readyz(request: Request, core: ChatCore) -> Readiness | JSONResponse:
    if core.draining:
        return error_response(request, 503, "not_ready", "The service is shutting down.")
    checks: dict[str, ReadinessCheck] = {
        "provider": core.provider.ready,
        **request.app.state.wiring.hooks.readiness,
    }
    results = await asyncio.gather(*(_run_check(check) for check in checks.values()))
    failed = [name for name, ok in zip(checks, results, strict=True) if not ok]
    if failed:
        return error_response(
            request, 503, "not_ready", "Not ready: " + ", ".join(failed) + " unavailable."
        )
    return Readiness(status="ready", checks=dict.fromkeys(checks, "ok"))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format."}
    },
)
async def metrics(registry: AppMetrics) -> Response:
    body, content_type = registry.render()
    return Response(body, media_type=content_type)
