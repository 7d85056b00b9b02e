"""SIGTERM: open streams get a final event and end; the process exits within the grace period."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

import {{cookiecutter.package_name}} as package
from {{cookiecutter.package_name}}.main import create_app

from conftest import AUTH_HEADERS, TEST_DEFAULTS, SettingsFactory, running
from sse_client import iter_events

PACKAGE = package.__name__
# The service runs in a child process, which must import the same source tree
# whether or not the project is installed.
SOURCE_ROOT = str(Path(package.__file__).resolve().parents[1])
GRACE_SECONDS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_service(port: int, **env: str) -> asyncio.subprocess.Process:
    environment = {
        **os.environ,
        # The same test defaults as in-process apps (credentials included), then this test's.
        **{name.upper(): str(value) for name, value in TEST_DEFAULTS.items()},
        "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE_ROOT, os.environ.get("PYTHONPATH")])),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ENVIRONMENT": "test",
        "FAKE_LLM_DELAY_MS": "20",
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "LOG_FORMAT": "json",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        PACKAGE,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if process.returncode is not None:
                break
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return process
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    if process.returncode is None:
        process.kill()
    _, stderr = await process.communicate()
    raise RuntimeError("service did not start: " + stderr.decode()[-2000:])


async def test_sigterm_ends_open_streams_with_a_final_event() -> None:
    port = free_port()
    process = await start_service(port)
    body = {"messages": [{"role": "user", "content": "long"}], "max_tokens": 4000}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=AUTH_HEADERS, timeout=30
        ) as http:

            async def sse() -> list[str]:
                async with http.stream("POST", "/api/v1/chat/stream", json=body) as response:
                    return [event.event async for event in iter_events(response)]

            async def openai_stream() -> list[str]:
                payload = {"model": "fake-echo-1", "stream": True, **body}
                async with http.stream(
                    "POST", "/api/v1/chat/completions", json=payload
                ) as response:
                    return [event.data async for event in iter_events(response)]

            async def websocket() -> int | None:
                async with websockets.connect(
                    f"ws://127.0.0.1:{port}/api/v1/chat/ws", additional_headers=AUTH_HEADERS
                ) as ws:
                    await ws.send(json.dumps({"type": "chat", **body}))
                    try:
                        while True:
                            await ws.recv()
                    except ConnectionClosed as closed:
                        return closed.rcvd.code if closed.rcvd else None

            sse_tasks = [asyncio.create_task(sse()) for _ in range(2)]
            openai_task = asyncio.create_task(openai_stream())
            ws_task = asyncio.create_task(websocket())
            await asyncio.sleep(0.5)
            sent_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.wait([*sse_tasks, openai_task, ws_task]), 15)
            sse_a, sse_b = (task.result() for task in sse_tasks)
            openai_datas = openai_task.result()
            ws_code = ws_task.result()
        code = await asyncio.wait_for(process.wait(), GRACE_SECONDS + 5)
        exited_after = time.monotonic() - sent_at
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    for kinds in (sse_a, sse_b):
        assert kinds[-2:] == ["error", "done"], kinds[-3:]
        assert kinds.count("token") > 5
    assert openai_datas[-1] == "[DONE]"
    assert json.loads(openai_datas[-2])["error"]["code"] == "shutting_down"
    assert ws_code == 1012
    # uvicorn re-raises the signal once it has shut down cleanly, so that process
    # managers see how it ended.
    assert code in (0, -signal.SIGTERM)
    assert exited_after < GRACE_SECONDS
    assert "Traceback" not in stderr


async def test_invalid_setting_stops_start_up_with_one_line() -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": SOURCE_ROOT,
        "PORT": "99999",
        "RATE_LIMIT_IP": "lots",
        "ENVIRONMENT": "test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", PACKAGE, env=environment, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert process.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("invalid configuration:")
    assert "PORT" in lines[0]
    assert "RATE_LIMIT_IP" in lines[0]


async def test_start_up_objects_are_frozen_while_serving_and_released_at_shutdown(
    make_settings: SettingsFactory,
) -> None:
    """Full collections skip what lives as long as the app; its shutdown hands it back."""
    async with running(create_app(make_settings())) as http:
        # Modules, routes, models and settings: tens of thousands of objects.
        assert gc.get_freeze_count() > 10_000
        assert (await http.get("/healthz")).status_code == 200
    assert gc.get_freeze_count() == 0
