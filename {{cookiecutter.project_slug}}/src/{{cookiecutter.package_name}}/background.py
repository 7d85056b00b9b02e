"""Stopping the background tasks that components start in their lifespan.

Cancelling a task and awaiting it is not enough on its own: a library that turns
a ``CancelledError`` into an error of its own (a client disconnecting inside its
socket timeout, say) lets a loop that catches that error go on, and a shutdown
awaiting the task waits forever. So each such loop also checks a stop flag that
its owner sets before calling ``stop_task``, and the wait here is bounded.
"""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("lifecycle")

# Long enough for a bounded call in flight (a refresh, a probe) to finish.
STOP_GRACE = 5.0


async def stop_task(task: asyncio.Task[None] | None, grace: float = STOP_GRACE) -> None:
    """Cancel ``task`` and wait at most ``grace`` seconds for it to end.

    A task still running after that is left behind, with a warning, rather than
    hold up the shutdown of everything else.
    """
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait({task}, timeout=grace)
    if not task.done():
        log.warning("background.task_did_not_stop", task=task.get_name(), waited_s=grace)
    elif not task.cancelled() and (error := task.exception()) is not None:
        log.warning("background.task_failed", task=task.get_name(), error=repr(error))
