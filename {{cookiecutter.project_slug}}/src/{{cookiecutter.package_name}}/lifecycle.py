"""Start-up and shutdown: the lifespan and draining on SIGTERM.

uvicorn waits for open connections after SIGTERM, but an endless stream never
closes by itself. Chaining onto the server's signal handler lets the core end
every stream with a final event first, so the process exits within the grace
period instead of having its streams cut.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI

from .chat.service import ChatService

SignalHandler = Callable[[int, FrameType | None], Any] | int | None


def drain_on_sigterm(service: ChatService) -> Callable[[], None]:
    """Make SIGTERM drain the service, then call the previous handler; return an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: SignalHandler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        service.begin_shutdown()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)

    def undo() -> None:
        signal.signal(signal.SIGTERM, previous)

    return undo


Hook = Callable[[FastAPI], Any]


def build_lifespan(startup: list[Hook], shutdown: list[Hook]) -> Callable[[FastAPI], Any]:
    """A lifespan that runs async hooks in order on start and in reverse on stop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service: ChatService = app.state.chat_service
        undo = drain_on_sigterm(service)
        try:
            for hook in startup:
                await hook(app)
            yield
        finally:
            service.begin_shutdown()
            for hook in reversed(shutdown):
                await hook(app)
            undo()

    return lifespan
