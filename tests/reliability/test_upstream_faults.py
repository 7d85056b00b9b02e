"""Item 6, upstream faults: the ``openai`` provider against a scripted OpenAI-compatible upstream.

The upstream is the rendered project's own ``tests/fake_upstream.py`` (a uvicorn in a
thread of the test process). Each fault is played to every HTTP/WebSocket transport:
the OpenAI route (streamed and not), SSE and WebSocket.

* before the first token (refused, 429 with ``Retry-After``, 500, 503 with a
  ``Retry-After`` too far off to wait for, first token or headers later than the read
  timeout, dropped): the OpenAI routes answer the documented status with OpenAI's
  error schema (429 with ``Retry-After``, 502, 503, 504); SSE and WebSocket, whose
  headers/handshake are already out, send an ``error`` event then ``done``
  (``finish_reason: error``);
* after it (dropped, malformed chunk, hang): the streams send an ``error`` event or
  error chunk and end (``done`` / ``[DONE]``); a non-streamed completion answers 502/504.

Every request is bounded in time, and afterwards the upstream has no open stream left
(every upstream connection the service opened was let go) and no generation is active.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.ports import free_port
from websockets.exceptions import ConnectionClosed

from .clients import parse_sse, request, ws_connect
from .conftest import Figures
from .harness import API, DEFAULT, Deployment, Service, variant_params

pytestmark = pytest.mark.parametrize("variant", variant_params("upstream", DEFAULT))

READ_TIMEOUT = 1.0
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
TRANSPORTS = ("openai", "openai_stream", "sse", "websocket")


@dataclass
class Fault:
    name: str
    script: Any  # a fake_upstream script, or None for "upstream refuses connections"
    status: int  # what a request that has no token yet is answered
    code: str
    before_first_token: bool
    max_seconds: float
    retry_after: str | None = None


def faults(fu: Any) -> list[Fault]:
    tokens = ("a", "b", "c", "d")
    return [
        Fault("refused (closed port)", None, 503, "upstream_unavailable", True, 3.0),
        Fault(
            "429 with Retry-After",
            fu.rate_limited("7"),
            429,
            "upstream_rate_limited",
            True,
            2.0,
            "7",
        ),
        Fault("500", fu.server_error(500), 502, "upstream_error", True, 2.0),
        Fault(
            "503, retry too far off",
            fu.server_error(503, retry_after="30"),
            502,
            "upstream_error",
            True,
            2.0,
        ),
        Fault(
            "first token later than the read timeout",
            fu.StreamScript(tokens=tokens, first_token_delay=3 * READ_TIMEOUT),
            504,
            "generation_timeout",
            True,
            READ_TIMEOUT + 2.0,
        ),
        Fault(
            "headers later than the read timeout",
            fu.StreamScript(tokens=tokens, headers_delay=3 * READ_TIMEOUT),
            504,
            "generation_timeout",
            True,
            READ_TIMEOUT + 2.0,
        ),
        Fault(
            "dropped before the first token",
            fu.StreamScript(tokens=tokens, drop_after=0),
            502,
            "upstream_error",
            True,
            2.0,
        ),
        Fault(
            "dropped mid-stream",
            fu.StreamScript(tokens=tokens, drop_after=2),
            502,
            "upstream_error",
            False,
            2.0,
        ),
        Fault(
            "malformed chunk mid-stream",
            fu.StreamScript(tokens=tokens, malformed_after=1),
            502,
            "upstream_error",
            False,
            2.0,
        ),
        Fault(
            "hangs mid-stream",
            fu.StreamScript(tokens=tokens, hang_after=1),
            504,
            "generation_timeout",
            False,
            READ_TIMEOUT + 2.0,
        ),
    ]


async def play(service: Service, fault: Fault, transport: str) -> tuple[str | None, float]:
    """Send one request through ``transport``; what was wrong with the answer, and its duration."""
    port, headers = service.port, service.headers
    started = time.monotonic()
    try:
        async with asyncio.timeout(fault.max_seconds + 5):
            problem = await _play(port, headers, fault, transport)
    except TimeoutError:
        problem = "no answer in time"
    elapsed = time.monotonic() - started
    if problem is None and elapsed > fault.max_seconds:
        problem = f"took {elapsed:.2f}s (bound {fault.max_seconds}s)"
    return problem, elapsed


async def _play(port: int, headers: dict[str, str], fault: Fault, transport: str) -> str | None:
    if transport == "websocket":
        ws = await ws_connect(port, headers)
        try:
            await ws.send(json.dumps({"type": "chat", **BODY}))
            kinds: list[str] = []
            code = None
            try:
                while not kinds or kinds[-1] != "done":
                    message = json.loads(await ws.recv())
                    kinds.append(message["type"])
                    if message["type"] == "error":
                        code = message["code"]
                    elif message["type"] == "done" and message["finish_reason"] != "error":
                        return f"done with finish_reason {message['finish_reason']!r}"
            except ConnectionClosed:
                return f"socket closed after {kinds}"
            if code != fault.code:
                return f"error code {code!r}, expected {fault.code!r} ({kinds})"
            return None
        finally:
            await ws.close()
    if transport == "sse":
        head, data = await request(
            port, "POST", API + "/chat/stream", json_body=BODY, headers=headers
        )
        if head.status != 200:
            return f"status {head.status}"
        events = parse_sse(data.decode())
        kinds = [e.event for e in events]
        if kinds[-2:] != ["error", "done"]:
            return f"events end with {kinds[-3:]}, expected error then done"
        code = events[-2].json()["code"]
        reason = events[-1].json()["finish_reason"]
        if code != fault.code or reason != "error":
            return f"error {code!r} / finish_reason {reason!r}, expected {fault.code!r} / 'error'"
        return None
    stream = transport == "openai_stream"
    body = {"model": "gpt-test", "stream": stream, **BODY}
    head, data = await request(
        port, "POST", API + "/chat/completions", json_body=body, headers=headers
    )
    if not stream or fault.before_first_token:
        return _error_answer(head.status, head.headers, data, fault)
    if head.status != 200:
        return f"status {head.status}, expected 200 then an error chunk"
    frames = [e.data for e in parse_sse(data.decode())]
    if frames[-1:] != ["[DONE]"] or len(frames) < 2 or "error" not in json.loads(frames[-2]):
        return f"stream ends with {frames[-2:]}, expected an error chunk then [DONE]"
    code = json.loads(frames[-2])["error"]["code"]
    return None if code == fault.code else f"error chunk code {code!r}, expected {fault.code!r}"


def _error_answer(status: int, headers: dict[str, str], data: bytes, fault: Fault) -> str | None:
    if status != fault.status:
        return f"status {status}, expected {fault.status}: {data[:200]!r}"
    if headers.get("content-type", "").split(";")[0] != "application/json":
        return f"content-type {headers.get('content-type')!r}"
    body = json.loads(data)
    # OpenAI's error shape: the SDKs read error.code and error.type.
    error = body.get("error") if set(body) == {"error"} else None
    if not isinstance(error, dict) or error.get("code") != fault.code or not error.get("type"):
        return f"body {body}, expected OpenAI's error with code {fault.code!r}"
    if not headers.get("x-request-id"):
        return "no X-Request-ID"
    if fault.retry_after is not None and headers.get("retry-after") != fault.retry_after:
        return f"Retry-After {headers.get('retry-after')!r}, expected {fault.retry_after!r}"
    return None


@pytest.mark.timeout(240)
def test_upstream_faults(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    project = deployment.project
    fu = project.import_file(
        "tests/fake_upstream.py", f"reliability_fake_upstream_{project.variant.id}"
    )
    problems: list[str] = []
    timings: dict[str, float] = {}
    played = 0
    provider = {
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "gpt-test",
        "LLM_API_KEY": "sk-reliability",
        "LLM_MAX_RETRIES": "0",
        "LLM_CONNECT_TIMEOUT": "1",
        "LLM_READ_TIMEOUT": str(READ_TIMEOUT),
        "FIRST_TOKEN_TIMEOUT": "10",
    }
    with fu.FakeUpstream() as upstream:
        service = Service(
            deployment,
            tmp_path / "service.log",
            env={**provider, "LLM_BASE_URL": upstream.base_url},
        ).start()
        # Nothing listens on this port: every connection is refused.
        refused = Service(
            deployment,
            tmp_path / "service-refused.log",
            env={
                **provider,
                "LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
                "LLM_MAX_RETRIES": "1",
            },
        ).start()
        try:
            for fault in faults(fu):
                for transport in TRANSPORTS:
                    target = refused if fault.script is None else service
                    if fault.script is not None:
                        upstream.enqueue(fault.script)
                    problem, elapsed = asyncio.run(play(target, fault, transport))
                    played += 1
                    timings[f"{fault.name} / {transport}"] = round(elapsed, 2)
                    if problem:
                        problems.append(f"{fault.name} / {transport}: {problem}")
                    # Whatever the fault, the upstream stream it used is let go promptly.
                    if not upstream.wait_for_sync(lambda: upstream.open_streams == 0, 5):
                        problems.append(
                            f"{fault.name} / {transport}: {upstream.open_streams} upstream "
                            "stream(s) still open"
                        )
                        upstream.release_hangs()
            drained = upstream.wait_for_sync(lambda: upstream.open_streams == 0, 5)
            opened, closed = upstream.streams_opened, upstream.streams_closed
            outcomes = upstream.outcomes
            active = service.metrics().sum("active_streams")
            connections = [
                c
                for c in service.connections()
                if c.raddr and c.raddr.port == upstream.port and c.status == "ESTABLISHED"
            ]
        finally:
            service.stop()
            refused.stop()
    if not drained or opened != closed:
        problems.append(f"upstream streams: {opened} opened, {closed} closed")
    if active:
        problems.append(f"{active} generations still active after the run")
    for server in (service, refused):
        # The provider logs upstream faults as warnings; an error would be a finding.
        problems += [f"log: {p}" for p in server.log_problems()]
    figures.requests = played
    figures.faults = played
    figures.dropped = sum(1 for o in outcomes if o in ("dropped", "disconnected"))
    figures.details = {
        "faults": len(faults(fu)),
        "transports": list(TRANSPORTS),
        "read_timeout_s": READ_TIMEOUT,
        "upstream_streams_opened": opened,
        "upstream_streams_closed": closed,
        "upstream_outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "idle_keepalive_connections_to_upstream": len(connections),
        "slowest_s": max(timings.values(), default=0),
        "timings_s": timings,
    }
    figures.check(problems, limit=40)
