"""Background tasks stop in bounded time, even when one will not take its cancellation."""

from __future__ import annotations

import asyncio
import time

from {{cookiecutter.package_name}}.background import stop_task
from {{cookiecutter.package_name}}.main import create_app

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory
from stack_helpers import captured_logs


async def test_a_task_that_takes_its_cancellation_ends_at_once() -> None:
    task = asyncio.create_task(asyncio.sleep(60), name="sleeper")
    await asyncio.sleep(0)
    started = time.monotonic()
    await stop_task(task, grace=5.0)
    assert task.cancelled()
    assert time.monotonic() - started < 1.0


async def test_a_task_that_ignores_cancellation_is_left_behind_after_the_grace(
    make_settings: SettingsFactory,
) -> None:
    create_app(make_settings(log_format="json"))
    release = asyncio.Event()

    async def stubborn() -> None:
        # What a library that turns CancelledError into its own error, caught by
        # the loop around it, amounts to.
        while not release.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with captured_logs() as logs:
        started = time.monotonic()
        await stop_task(task, grace=0.2)
        waited = time.monotonic() - started
    assert 0.2 <= waited < 2.0
    assert not task.done()
    (warning,) = logs.events("background.task_did_not_stop")
    assert warning["task"] == "stubborn"
    assert warning["level"] == "warning"
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()


async def test_a_task_that_fails_while_stopping_is_logged(make_settings: SettingsFactory) -> None:
    create_app(make_settings(log_format="json"))

    async def failing() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup went wrong") from None

    task = asyncio.create_task(failing(), name="failing")
    await asyncio.sleep(0)
    with captured_logs() as logs:
        await stop_task(task)
    (warning,) = logs.events("background.task_failed")
    assert "cleanup went wrong" in warning["error"]


async def test_stopping_a_missing_or_finished_task_does_nothing() -> None:
    await stop_task(None)
    task = asyncio.create_task(asyncio.sleep(0), name="done")
    await task
    await stop_task(task)
    assert task.done() and not task.cancelled()
