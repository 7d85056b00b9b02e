"""The ground floor every transport and middleware stands on: ASGI scope helpers.

Scope state, the request ID, request headers, WebSocket close codes, and a wait
that gives up when the client leaves. It imports nothing of this package, so
anything may import it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Scope

T = TypeVar("T")

# Where the versioned API lives; health, metrics and docs are outside it.
API_PREFIX = "/api/v1"

# Close codes for a WebSocket refused by a server without the denial-response
# extension: 1008 policy violation, 1011 internal error.
WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011

# What a caller-supplied request ID (X-Request-ID, or call metadata) may look like.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def state_of(scope: Scope) -> dict[str, Any]:
    """``scope["state"]``, created when the server did not provide one."""
    state: dict[str, Any] | None = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    return state


def request_id_of(scope: Scope) -> str:
    """The ID the request-ID layer gave this request; empty outside that layer."""
    state = scope.get("state")
    value = state.get("request_id") if state is not None else None
    return value if isinstance(value, str) else ""


def get_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header; ``name`` in lower case."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def get_joined_header(scope: Scope, name: bytes) -> bytes | None:
    """Every value of a list-valued header joined with commas, as RFC 9110 allows."""
    values = [bytes(value) for key, value in scope["headers"] if key == name]
    if not values:
        return None
    return b",".join(values)


def in_prefix(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise.

    Used while a streamed answer waits for its first event and so has sent no
    headers yet: Starlette only watches for disconnects once a response runs.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnect()
    return task.result()
