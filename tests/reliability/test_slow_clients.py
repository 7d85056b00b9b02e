"""Item 3, slow and stuck clients: bounded memory, and no other client kept waiting.

Stuck readers: one client per HTTP/WebSocket transport (SSE, OpenAI stream, WebSocket)
opens a long stream of 10 kB tokens relayed unpaced from an upstream (the ``openai``
provider against the project's fake upstream: 200 MB per stream if the server buffered
it) with a 4 kB receive buffer, and stops reading. The kernel buffers fill, uvicorn's
flow control pauses the writer, the generation and the upstream read wait: server RSS
must stay bounded (under 30 MiB for the three, flat once the buffers are full), the
streams must still be alive (reading resumes), and once the clients go every
generation and upstream stream must end. Nothing in the service times out a stuck
reader: behind the reverse proxy, nginx's ``send_timeout`` drops it.

Abandoned unpaced stream: a client leaves a fake-LLM stream with no pacing; its
generation must be cancelled without stalling the event loop (others are answered
within 1 s meanwhile).

Trickled headers: uvicorn has no header timeout, so connections sending their request
head one byte at a time stay open as long as the client likes (the proxy's
``client_header_timeout`` cuts them); the test proves that 50 of them do not slow other
clients down (the slowest normal request stays under 1 s), and measures what uvicorn
does with an unterminated 8 MiB header block: with httptools (the default with
``uvicorn[standard]``) it buffers it whole, with h11 the
``h11_max_incomplete_event_size`` bound refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from .clients import HTTPStream, request, ws_connect
from .conftest import Figures
from .harness import ALL_ON, API, DEFAULT, Deployment, MiB, RssSampler, Service, variant_params

pytestmark = pytest.mark.parametrize("variant", variant_params("slow", DEFAULT, ALL_ON))

WORD = "w" * 10_000  # every token is this word: 10 kB
STUCK_TOKENS = 20_000  # 200 MB per stream if nothing pushed back
# Three stuck readers, each holding a 200 MB answer: what they may cost in total (the
# allocator's high-water mark while the kernel buffers fill, about 6-8 MiB each), and
# how much more once those buffers are full (nothing).
RSS_BOUND = 30 * MiB
PLATEAU_SLACK = 4 * MiB
PLATEAU_SECONDS = 4.0
STALL_SECONDS = 8.0
TRICKLERS = 50
TRICKLE_SECONDS = 4.0
BIG_HEADER = 8 * MiB


def stuck_body(openai: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": WORD}],
        "max_tokens": STUCK_TOKENS,
    }
    if openai:
        body |= {"model": "fake-echo-1", "stream": True}
    return body


async def stuck_readers(service: Service, upstream: Any, short_script: Any) -> dict[str, Any]:
    """Three clients that stop reading a long stream of 10 kB tokens coming from the upstream."""
    port, headers = service.port, service.headers
    # Warm every path first (imports, the upstream connection pool), so that the baseline
    # is a steady state: one short stream per transport.
    upstream.enqueue(short_script, short_script, short_script)
    for path, body in (
        (API + "/chat/stream", stuck_body()),
        (API + "/chat/completions", stuck_body(openai=True)),
    ):
        await request(port, "POST", path, json_body=body, headers=headers)
    ws = await ws_connect(port, headers, max_size=None)
    await ws.send(json.dumps({"type": "chat", **stuck_body()}))
    while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "done":
        pass
    await ws.close()
    await asyncio.sleep(0.3)
    baseline = service.rss()
    sse = await HTTPStream.open(
        port, "POST", API + "/chat/stream", json_body=stuck_body(), headers=headers, rcvbuf=4096
    )
    openai = await HTTPStream.open(
        port,
        "POST",
        API + "/chat/completions",
        json_body=stuck_body(openai=True),
        headers=headers,
        rcvbuf=4096,
    )
    ws = await ws_connect(port, headers, max_size=None)
    await ws.send(json.dumps({"type": "chat", **stuck_body()}))
    problems = []
    try:
        with RssSampler(service.pid, interval=0.1) as sampler:
            await asyncio.sleep(STALL_SECONDS)
        settled = [rss for t, rss in sampler.samples if t >= 0.5]
        peak_growth = max(settled, default=baseline) - baseline
        # Once the kernel buffers are full (a few seconds) nothing more may accumulate.
        late = [rss for t, rss in sampler.samples if t >= STALL_SECONDS - PLATEAU_SECONDS]
        late_growth = (max(late) - late[0]) if late else 0
        # Still alive, only paused: reading again gets more tokens.
        resumed = 0
        async with asyncio.timeout(10):
            async for event in sse.iter_events():
                if event.event == "token":
                    resumed += 1
                    if resumed >= 200:
                        break
        if resumed < 200:
            problems.append(f"the stuck SSE stream gave only {resumed} tokens when read again")
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if first.get("type") != "token":
            problems.append(f"the stuck WebSocket answered {first.get('type')!r} when read again")
    finally:
        for stream in (sse, openai):
            stream.abort()
        ws.transport.abort()
    if peak_growth > RSS_BOUND:
        problems.append(
            f"RSS grew by {peak_growth / MiB:.1f} MiB with 3 stuck readers "
            f"(bound {RSS_BOUND // MiB} MiB; unbounded buffering would be ~600 MiB)"
        )
    if late_growth > PLATEAU_SLACK:
        problems.append(
            f"RSS kept growing while the readers were stuck: +{late_growth / MiB:.1f} MiB "
            f"over the last {PLATEAU_SECONDS:.0f}s of {STALL_SECONDS:.0f}s"
        )
    return {
        "problems": problems,
        "rss_baseline_mib": round(baseline / MiB, 1),
        "rss_growth_mib": round(peak_growth / MiB, 1),
        "rss_growth_last_4s_mib": round(late_growth / MiB, 1),
        "rss_samples_mib": [
            round((rss - baseline) / MiB, 1)
            for t, rss in sampler.samples[:: max(1, len(sampler.samples) // 16)]
        ],
        "stall_seconds": STALL_SECONDS,
        "tokens_read_after_stall": resumed,
    }


async def abandoned_unpaced_stream(service: Service) -> dict[str, Any]:
    """A client leaves an unpaced stream (fake LLM, no delay) after a few tokens.

    Its generation must be cancelled, and the event loop must stay free for others.
    """
    before = service.metrics()
    body = {"messages": [{"role": "user", "content": "u" * 1000}], "max_tokens": STUCK_TOKENS}
    stream = await HTTPStream.open(
        service.port,
        "POST",
        API + "/chat/stream",
        json_body=body,
        headers=service.headers,
        rcvbuf=4096,
    )
    seen = 0
    async for event in stream.iter_events():
        seen += event.event == "token"
        if seen >= 10:
            break
    stream.abort()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await request(service.port, "GET", "/healthz", timeout=120)
    stall = time.monotonic() - started
    ended = await asyncio.to_thread(_wait_active_zero, service, 120)
    finishes = service.metrics().minus(before).by("generations_total", "finish_reason")
    problems = []
    if stall > 1.0:
        problems.append(
            f"nobody was answered for {stall:.1f}s after a client left an unpaced stream: "
            "its generation ran on without yielding the event loop"
        )
    if finishes.get("cancelled", 0) != 1:
        problems.append(
            "an abandoned unpaced stream was not cancelled: generations ended "
            f"{ {k: int(v) for k, v in finishes.items() if v} } (expected cancelled: 1)"
        )
    return {
        "problems": problems,
        "event_loop_stall_s": round(stall, 2),
        "generation_ended_after_s": round(ended, 2),
        "finish_reasons": {k: int(v) for k, v in finishes.items() if v},
    }


async def trickle(port: int, duration: float) -> bool:
    """Send a request head one byte every 100 ms; whether the server kept the connection."""
    head = (
        f"POST {API}/chat/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nX-Padding: " + "p" * 200
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        deadline = time.monotonic() + duration
        index = 0
        while time.monotonic() < deadline:
            writer.write(head[index % len(head) : index % len(head) + 1])
            await writer.drain()
            index += 1
            await asyncio.sleep(0.1)
        return not reader.at_eof()
    except ConnectionError:
        return False
    finally:
        writer.transport.abort()


async def normal_client(service: Service, results: list[float], stop: asyncio.Event) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    while not stop.is_set():
        started = time.monotonic()
        head, data = await request(
            service.port, "POST", API + "/chat/stream", json_body=body, headers=service.headers
        )
        if head.status != 200 or b"event: done" not in data:
            results.append(float("inf"))
        else:
            results.append(time.monotonic() - started)
        await asyncio.sleep(0.05)


async def tricklers(service: Service) -> dict[str, Any]:
    stop = asyncio.Event()
    latencies: list[float] = []
    # Latency without tricklers first, for comparison.
    await asyncio.wait_for(_measure(service, latencies, stop, 1.0), 10)
    quiet = sorted(latencies)
    latencies.clear()
    stop.clear()
    trick = [asyncio.create_task(trickle(service.port, TRICKLE_SECONDS)) for _ in range(TRICKLERS)]
    await asyncio.sleep(0.5)
    await asyncio.wait_for(_measure(service, latencies, stop, TRICKLE_SECONDS - 1.0), 20)
    still_open = sum(await asyncio.gather(*trick))
    busy = sorted(latencies)
    problems = []
    if not busy or busy[-1] > 1.0:
        problems.append(
            f"with {TRICKLERS} trickling clients the slowest normal request took "
            f"{busy[-1] if busy else float('nan'):.2f}s (bound 1s)"
        )
    return {
        "problems": problems,
        "tricklers": TRICKLERS,
        "trickle_seconds": TRICKLE_SECONDS,
        "tricklers_still_open": still_open,
        "normal_requests": len(busy),
        "p50_quiet_ms": round(quiet[len(quiet) // 2] * 1000, 1) if quiet else None,
        "p50_with_tricklers_ms": round(busy[len(busy) // 2] * 1000, 1) if busy else None,
        "max_with_tricklers_ms": round(busy[-1] * 1000, 1) if busy else None,
    }


async def _measure(
    service: Service, latencies: list[float], stop: asyncio.Event, seconds: float
) -> None:
    clients = [asyncio.create_task(normal_client(service, latencies, stop)) for _ in range(4)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*clients)


async def oversized_header(service: Service) -> dict[str, Any]:
    """Send an unterminated header block of 8 MiB; what the server does with it."""
    baseline = service.rss()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    refused = None
    sent = 0
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        while sent < BIG_HEADER:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            if reader.at_eof() or (refused := await _answer(reader)) is not None:
                break
        await asyncio.sleep(0.3)
        held = service.rss() - baseline
        if refused is None:
            refused = await _answer(reader, 0.5)
        # Others are still served while this connection is pending.
        head, _ = await request(service.port, "GET", "/healthz", timeout=5)
        others_ok = head.status == 200
    except ConnectionError:
        held, others_ok = service.rss() - baseline, True
        refused = refused or "connection reset"
    finally:
        writer.transport.abort()
    await asyncio.sleep(0.5)
    released = service.rss() - baseline
    return {
        "sent_mib": round(sent / MiB, 2),
        "answer": refused,
        "rss_held_mib": round(held / MiB, 1),
        "rss_after_close_mib": round(released / MiB, 1),
        "others_served": others_ok,
    }


async def _answer(reader: asyncio.StreamReader, timeout: float = 0.0) -> str | None:
    with contextlib.suppress(TimeoutError, ConnectionError):
        data = await asyncio.wait_for(reader.read(200), timeout or 0.001)
        if data:
            return data.split(b"\r\n")[0].decode("latin-1")
        return "closed"
    return None


@pytest.mark.timeout(300)
def test_slow_and_stuck_clients(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    problems: list[str] = []
    project = deployment.project
    fake_upstream = project.import_file(
        "tests/fake_upstream.py", f"reliability_fake_upstream_{project.variant.id}"
    )
    # The same 10 kB string object for every token: the upstream costs no memory for it.
    script = fake_upstream.StreamScript(tokens=(WORD,) * 20_000)
    with fake_upstream.FakeUpstream(default=script) as upstream:
        relay = Service(
            deployment,
            tmp_path / "service-upstream.log",
            env={
                "LLM_PROVIDER": "openai",
                "LLM_BASE_URL": upstream.base_url,
                "LLM_MAX_RETRIES": "0",
                "MAX_TOKENS_LIMIT": str(STUCK_TOKENS),
            },
        ).start()
        try:
            short = fake_upstream.StreamScript(tokens=(WORD,) * 5)
            stuck = asyncio.run(stuck_readers(relay, upstream, short))
            ended = _wait_active_zero(relay)
            upstream_closed = upstream.wait_for_sync(lambda: upstream.open_streams == 0, 10)
        finally:
            relay.stop()
    service = Service(
        deployment,
        tmp_path / "service.log",
        env={"FAKE_LLM_DELAY_MS": "0", "MAX_TOKENS_LIMIT": str(STUCK_TOKENS)},
    ).start()
    try:
        slow = asyncio.run(tricklers(service))
        big = asyncio.run(oversized_header(service))
        abandoned = asyncio.run(abandoned_unpaced_stream(service))
    finally:
        service.stop()
    # The same oversized header against uvicorn's h11 implementation, for comparison.
    h11 = Service(
        deployment,
        tmp_path / "service-h11.log",
        uvicorn_flags=["--http", "h11", "--h11-max-incomplete-event-size", "16384"],
    ).start()
    try:
        big_h11 = asyncio.run(oversized_header(h11))
    finally:
        h11.stop()

    problems += stuck.pop("problems") + slow.pop("problems") + abandoned.pop("problems")
    if ended < 0:
        problems.append("generations of the stuck readers did not end after the clients left")
    if not upstream_closed:
        problems.append("the upstream streams of the stuck readers were not closed")
    if not big["others_served"] or not big_h11["others_served"]:
        problems.append("a pending oversized header kept other clients from being served")
    if big["rss_after_close_mib"] > 20:
        problems.append(f"oversized header memory not released on close: {big}")
    for server in (relay, service, h11):
        problems += [f"log: {p}" for p in server.log_problems()]

    figures.requests = 3 + TRICKLERS + slow["normal_requests"] + 3
    figures.faults = 3 + TRICKLERS + 3
    figures.dropped = 4
    figures.details = {
        "stuck_readers": stuck,
        "stuck_generations_ended_after_s": round(ended, 2),
        "abandoned_unpaced_stream": abandoned,
        "trickled_headers": slow,
        "oversized_header_httptools": big,
        "oversized_header_h11": big_h11,
    }
    figures.check(problems)


def _wait_active_zero(service: Service, timeout: float = 15) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if service.metrics().sum("active_streams") == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    return -1.0
