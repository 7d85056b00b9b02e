"""Start-up and shutdown: the lifespan and draining on SIGTERM.

uvicorn waits for open connections after SIGTERM, but an endless stream never
closes by itself. Chaining onto the server's signal handler lets the core end
every stream with a final event first, so the process exits within the grace
period instead of having its streams cut.

Once everything has started, the objects that live as long as the process
(modules, routes, models, settings, pools) are moved out of the garbage
collector's reach with ``gc.freeze()``. Requests that wait on I/O (a shared
rate-limit backend, a provider) survive young collections and so trigger full ones, and a
full collection scans every tracked object: without the freeze each one walked
the whole application, tens of milliseconds, charged to whichever request
happened to allocate next.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from fastapi import FastAPI

from .chat.service import ChatService
from .ratelimit.base import RateLimiter

SignalHandler = Callable[[int, FrameType | None], Any] | int | None
Hook = Callable[[FastAPI], Awaitable[Any]]
# True when a dependency can serve; /readyz runs every one.
ReadinessCheck = Callable[[], Awaitable[bool]]


@dataclass(slots=True)
class Hooks:
    """What features add to the app's lifespan and to /readyz."""

    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # Servers the lifespan runs besides HTTP (by name): ``python -m <package>
    # --no-http`` serves these alone.
    servers: list[str] = field(default_factory=list)


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


def build_lifespan(
    core: ChatService, limiter: RateLimiter, hooks: Hooks
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Run the rate limiter's and every feature's hooks: start-up in order, shutdown reversed."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        undo = drain_on_sigterm(core)
        try:
            await limiter.start(app)
            for hook in hooks.startup:
                await hook(app)
            # Start-up leaves no cyclic garbage to collect first (measured: none).
            gc.freeze()
            yield
        finally:
            core.begin_shutdown()
            for hook in reversed(hooks.shutdown):
                await hook(app)
            await limiter.stop(app)
            undo()
            # What this app left behind is collectable again (tests run many apps in one process).
            gc.unfreeze()

    return lifespan
