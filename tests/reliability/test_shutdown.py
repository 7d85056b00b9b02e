"""Item 4, graceful shutdown: SIGTERM with 200 open streams over every transport of the variant.

The service is started by its real entry point (``python -m <package>``). Once every
stream has its first token, SIGTERM: each stream must get its final event (SSE:
``error`` ``shutting_down`` then ``done``; OpenAI: an error chunk then ``[DONE]``;
WebSocket: close code 1012; gRPC: a ``shutting_down`` error event, with the health
service turning NOT_SERVING first; GraphQL subscriptions: a ``shutting_down`` error, or
close code 1012), the process must exit within the grace period (5 s) with status 0
or -SIGTERM (-15), and nothing may be logged as an error.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .clients import GrpcChat
from .conftest import Figures
from .harness import ALL_ON, DEFAULT, Deployment, Service, variant_params
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

pytestmark = pytest.mark.parametrize("variant", variant_params("shutdown", DEFAULT, ALL_ON))

STREAMS = 200
GRACE_SECONDS = 5


async def watch_health(client: GrpcChat, statuses: list[tuple[float, str]]) -> None:
    """Record every status the gRPC health service announces, with its time."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(client.channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    try:
        async for reply in call:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            statuses.append((time.monotonic(), str(name)))
    except Exception as exc:
        statuses.append((time.monotonic(), f"ended:{type(exc).__name__}"))


async def scenario(service: Service, deployment: Deployment) -> dict[str, Any]:
    transports = list(deployment.transports)
    headers = service.headers
    grpc_clients: list[GrpcChat] = []
    health: list[tuple[float, str]] = []
    watcher = None
    if "grpc" in transports:
        port = service.grpc_port
        assert port is not None
        grpc_clients = [
            GrpcChat(deployment.project, port, deployment.grpc_metadata) for _ in range(2)
        ]
        watcher = asyncio.create_task(watch_health(grpc_clients[0], health))
    plans = []
    tasks = []
    for index in range(STREAMS):
        transport = transports[index % len(transports)]
        plan = Plan(kind="hold", max_tokens=4000, started=asyncio.Event())
        plans.append(plan)
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
        tasks.append(asyncio.create_task(guarded(transport, plan, runner, 60)))
    try:
        started = asyncio.gather(*(plan.started.wait() for plan in plans if plan.started))
        await asyncio.wait_for(started, 45)
        open_before = sum(1 for task in tasks if not task.done())
        sent_at = time.monotonic()
        service.signal(signal.SIGTERM)
        results: list[StreamResult] = await asyncio.wait_for(
            asyncio.gather(*tasks), GRACE_SECONDS + 15
        )
        streams_ended = time.monotonic() - sent_at
        exit_code = await asyncio.to_thread(service.wait, GRACE_SECONDS + 5)
        exited_after = time.monotonic() - sent_at
    finally:
        for task in tasks:
            task.cancel()
        if watcher is not None:
            watcher.cancel()
        for client in grpc_clients:
            await client.close()
    return {
        "results": results,
        "open_before": open_before,
        "streams_ended_s": streams_ended,
        "exit_code": exit_code,
        "exited_after_s": exited_after,
        "health": [(round(t - sent_at, 3), s) for t, s in health],
        "grpc": bool(grpc_clients),
    }


@pytest.mark.timeout(180)
def test_sigterm_with_open_streams(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    service = Service(
        deployment,
        tmp_path / "service.log",
        env={"SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS), "FAKE_LLM_DELAY_MS": "50"},
    ).start()
    try:
        outcome = asyncio.run(scenario(service, deployment))
    finally:
        service.stop()
    results: list[StreamResult] = outcome["results"]
    problems = [f"{r.transport}: {r.problem}" for r in results if r.problem]
    if outcome["open_before"] != STREAMS:
        problems.append(f"only {outcome['open_before']} of {STREAMS} streams open at SIGTERM")
    if outcome["exit_code"] is None:
        problems.append(f"the process did not exit within {GRACE_SECONDS + 5}s of SIGTERM")
    elif outcome["exit_code"] not in (0, -signal.SIGTERM):
        problems.append(f"exit status {outcome['exit_code']}, expected 0 or -15")
    if outcome["exited_after_s"] > GRACE_SECONDS:
        problems.append(
            f"exited {outcome['exited_after_s']:.2f}s after SIGTERM, grace is {GRACE_SECONDS}s"
        )
    if outcome["grpc"]:
        statuses = [s for _, s in outcome["health"]]
        if "NOT_SERVING" not in statuses:
            problems.append(f"gRPC health never turned NOT_SERVING: {outcome['health']}")
    problems += [f"log: {p}" for p in service.log_problems()]

    by_transport = Counter(r.transport for r in results)
    figures.requests = STREAMS
    figures.faults = 1
    figures.dropped = 0
    figures.details = {
        "streams": dict(by_transport),
        "final_events": dict(
            Counter(f"{r.transport}:{r.close_code or r.error_code or r.status}" for r in results)
        ),
        "grace_seconds": GRACE_SECONDS,
        "streams_ended_s": round(outcome["streams_ended_s"], 2),
        "exited_after_s": round(outcome["exited_after_s"], 2),
        "exit_code": outcome["exit_code"],
        "grpc_health": outcome["health"],
    }
    figures.check(problems)
