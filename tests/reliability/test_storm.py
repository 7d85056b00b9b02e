"""Item 2, disconnect storm: 1,000 concurrent streams on one uvicorn worker, two thirds dropped.

The worker runs with ``--backlog 4096``. A third of the clients leave before the first
token (the fake LLM waits 300 ms before it), a third after 2-8 tokens, a third read to
the end; drops alternate between a clean close (FIN) and an abort (RST). The streams
are spread over every transport the variant has (SSE, OpenAI stream, WebSocket; gRPC
and GraphQL subscriptions in all-on). Two identical storms run: the first sets the
allocator's high-water mark, the second is measured. Afterwards no stream may still be
active (``active_streams`` 0); every generation must be accounted for in
``generations_total`` per transport (``length`` for the streams read in full,
``cancelled`` for between the mid-stream drops and all drops, nothing else);
``tokens_streamed_total`` must be at least what the clients got; the server's RSS must
be within 50 MiB of where the second storm started; and its log must hold no error.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .clients import GrpcChat
from .conftest import Figures
from .harness import ALL_ON, DEFAULT, Deployment, MiB, RssSampler, Service, variant_params
from .streams import (
    Plan,
    StreamResult,
    guarded,
    run_graphql,
    run_grpc,
    run_openai,
    run_sse,
    run_websocket,
)

pytestmark = pytest.mark.parametrize("variant", variant_params("storm", DEFAULT, ALL_ON))

STREAMS = 1000
MAX_TOKENS = 24
FIRST_TOKEN_DELAY_MS = 300
TOKEN_DELAY_MS = 40
RSS_SLACK = 50 * MiB
STREAM_TIMEOUT = 60.0
KINDS = ("before_first", "mid", "full")


def plan_for(index: int) -> Plan:
    kind = KINDS[index % 3]
    return Plan(
        kind=kind,  # type: ignore[arg-type]
        max_tokens=MAX_TOKENS,
        drop_after_tokens=2 + index % 7,
        # 50-250 ms: always before the first token, which takes at least 300 ms.
        drop_after_seconds=0.05 + (index % 5) * 0.05,
        abort=(index // 3) % 2 == 1,
    )


async def storm(service: Service, deployment: Deployment, count: int) -> list[StreamResult]:
    transports = list(deployment.transports)
    headers = service.headers
    grpc_clients: list[GrpcChat] = []
    if "grpc" in transports:
        port = service.grpc_port
        assert port is not None
        # Several channels, so no single HTTP/2 connection carries hundreds of streams.
        grpc_clients = [
            GrpcChat(deployment.project, port, deployment.grpc_metadata) for _ in range(4)
        ]
    tasks = []
    for index in range(count):
        transport = transports[index % len(transports)]
        plan = plan_for(index // len(transports))
        runner: Any
        if transport == "sse":
            runner = lambda p: run_sse(service.port, headers, p)  # noqa: E731
        elif transport == "openai":
            runner = lambda p: run_openai(service.port, headers, p)  # noqa: E731
        elif transport == "websocket":
            runner = lambda p: run_websocket(service.port, headers, p)  # noqa: E731
        elif transport == "graphql":
            runner = lambda p: run_graphql(service.port, headers, p)  # noqa: E731
        else:
            client = grpc_clients[index % len(grpc_clients)]
            runner = lambda p, c=client: run_grpc(c, p)  # noqa: E731
        tasks.append(guarded(transport, plan, runner, STREAM_TIMEOUT))
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for client in grpc_clients:
            await client.close()


def wait_drained(service: Service, timeout: float = 20) -> float:
    """Seconds until ``active_streams`` is 0 on every transport; -1 if it never is."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if service.metrics().sum("active_streams") == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    return -1.0


@pytest.mark.timeout(300)
def test_disconnect_storm(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    service = Service(
        deployment,
        tmp_path / "service.log",
        env={
            "FAKE_LLM_FIRST_TOKEN_DELAY_MS": str(FIRST_TOKEN_DELAY_MS),
            "FAKE_LLM_DELAY_MS": str(TOKEN_DELAY_MS),
            "SSE_KEEPALIVE_SECONDS": "15",
        },
        uvicorn_flags=["--backlog", "4096", "--ws-max-size", "65536"],
    ).start()
    problems: list[str] = []
    try:
        # A first, identical storm warms imports, pools and allocator arenas: Python keeps
        # its high-water mark, so RSS is compared with the steady state after it. Its own
        # growth is recorded (first_storm_growth_mib) but not held to the bound.
        cold = service.rss()
        warm = asyncio.run(storm(service, deployment, STREAMS))
        problems += [f"first storm {r.transport}/{r.kind}: {r.problem}" for r in warm if r.problem]
        if wait_drained(service) < 0:
            problems.append("active_streams did not return to 0 after the first storm")
        time.sleep(1.0)
        baseline = service.rss()
        before = service.metrics()
        started = time.monotonic()
        with RssSampler(service.pid) as sampler:
            results = asyncio.run(storm(service, deployment, STREAMS))
            storm_seconds = time.monotonic() - started
            drained_after = wait_drained(service)
            time.sleep(1.0)
        after_rss = service.rss()
        after = service.metrics()
    finally:
        exit_code = service.stop()

    delta = after.minus(before)
    finishes = {
        (transport, reason): value
        for (name, labels), value in delta.samples.items()
        if name == "generations_total" and value
        for transport, reason in [(dict(labels)["transport"], dict(labels)["finish_reason"])]
    }
    plans = Counter((r.transport, r.kind) for r in results)
    tokens_received = Counter()
    for result in results:
        tokens_received[result.transport] += result.tokens
        if result.problem:
            problems.append(f"{result.transport}/{result.kind}: {result.problem}")

    # Every generation is accounted for: the ones read to the end finished with
    # "length", every other one was cancelled, none is still running.
    if drained_after < 0:
        problems.append(f"active_streams still {after.by('active_streams', 'transport')}")
    for transport in {r.transport for r in results}:
        label = transport  # the transports' names are their metric labels
        early, mid, full = (plans[(transport, k)] for k in KINDS)
        length = finishes.get((label, "length"), 0)
        cancelled = finishes.get((label, "cancelled"), 0)
        if length != full:
            problems.append(f"{transport}: {length} generations finished, {full} were read in full")
        if not mid <= cancelled <= mid + early:
            problems.append(
                f"{transport}: {cancelled} generations cancelled, expected {mid} to {mid + early}"
            )
        served = delta.sum("tokens_streamed_total", transport=label)
        if served < tokens_received[transport]:
            problems.append(
                f"{transport}: clients got {tokens_received[transport]} tokens, "
                f"the server counted {served}"
            )
    others = {k: v for k, v in finishes.items() if k[1] not in ("length", "cancelled")}
    if others:
        problems.append(f"unexpected finish reasons: {others}")
    growth = after_rss - baseline
    if growth > RSS_SLACK:
        problems.append(
            f"RSS grew by {growth / MiB:.1f} MiB over the storm (baseline {baseline / MiB:.1f} MiB)"
        )
    problems += [f"log: {p}" for p in service.log_problems()]
    if exit_code not in (0, -15):
        problems.append(f"the server exited with {exit_code} after SIGTERM")

    dropped = sum(1 for r in results if r.kind in ("before_first", "mid"))
    figures.requests = 2 * STREAMS
    figures.faults = 2 * dropped
    figures.dropped = 2 * dropped
    figures.details = {
        "transports": sorted({r.transport for r in results}),
        "streams": STREAMS,
        "dropped_before_first_token": sum(1 for r in results if r.kind == "before_first"),
        "dropped_mid_stream": sum(1 for r in results if r.kind == "mid"),
        "read_to_end": sum(1 for r in results if r.kind == "full"),
        "storm_seconds": round(storm_seconds, 2),
        "drained_after_s": round(drained_after, 2),
        "generations": {f"{t}/{r}": int(v) for (t, r), v in sorted(finishes.items())},
        "tokens_received": dict(tokens_received),
        "rounds": 2,
        "rss_cold_mib": round(cold / MiB, 1),
        "first_storm_growth_mib": round((baseline - cold) / MiB, 1),
        "rss_baseline_mib": round(baseline / MiB, 1),
        "rss_peak_mib": round(sampler.peak / MiB, 1),
        "rss_after_mib": round(after_rss / MiB, 1),
        "rss_growth_mib": round(growth / MiB, 1),
        "log_lines": len(service.log_text().splitlines()),
        "exit_code": exit_code,
    }
    figures.check(problems)
