"""Item 5, Redis faults: killed, paused and restarted under load, in every failure mode.

Four service processes share one ``redis-server`` of the test's own: two in
``RATE_LIMIT_FAILURE_MODE=local`` (the default), one ``open`` and one ``closed``. A
load of rate-limited requests (``GET /api/v1/models``, limits out of the way) runs
against the first three while Redis is SIGKILLed, restarted on the same port, and
paused with ``DEBUG SLEEP`` (2 s):

* ``local`` and ``open`` never answer 5xx; ``closed`` answers 503 (the API's error schema)
  while Redis is away and 200 again once it is back;
* every request is answered within 1.5 s (``REDIS_TIMEOUT_MS`` bounds each decision;
  the rest is four servers and the load sharing two cores);
* after each recovery the limits are shared again: with a small per-route limit
  (``/api/v1/engines``, 10/minute), a client hitting the two ``local`` processes in
  turn gets 10 answers in all, not 10 from each (clients are told apart by
  ``X-Forwarded-For`` from a trusted proxy, so each check uses a fresh client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Figures
from .harness import REDIS, Deployment, Service, start_all, variant_params

pytestmark = pytest.mark.parametrize("variant", variant_params("redis", REDIS))

SHARED_LIMIT = 10
# REDIS_TIMEOUT_MS (100 ms) bounds each rate-limit decision; the rest of the margin is
# four servers and the load generator sharing two cores.
LATENCY_BOUND = 1.5
OUTAGE_SECONDS = 2.5
PAUSE_SECONDS = 2
RECOVERY_TIMEOUT = 30.0


@dataclass
class Sample:
    service: str
    started: float
    status: int
    seconds: float
    body: bytes = b""


@dataclass
class Load:
    samples: list[Sample] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def worker(name: str, service: Service, load: Load) -> None:
    async with httpx.AsyncClient(base_url=service.url, headers=service.headers, timeout=5) as http:
        while not load.stop.is_set():
            started = time.monotonic()
            try:
                response = await http.get("/api/v1/models")
                status, body = response.status_code, response.content
            except httpx.HTTPError as exc:
                status, body = 0, repr(exc).encode()
            load.samples.append(Sample(name, started, status, time.monotonic() - started, body))
            await asyncio.sleep(0.02)


async def shared_limit_check(a: Service, b: Service, client_ip: str) -> int:
    """Requests a fresh client gets through on /engines, alternating between ``a`` and ``b``."""
    allowed = 0
    headers = {"X-Forwarded-For": client_ip}
    async with httpx.AsyncClient(timeout=5) as http:
        for index in range(2 * SHARED_LIMIT + 4):
            service = (a, b)[index % 2]
            response = await http.get(
                service.url + "/api/v1/engines", headers={**service.headers, **headers}
            )
            allowed += response.status_code == 200
    return allowed


async def until_shared(
    a: Service, b: Service, prefix: str, timeout: float
) -> tuple[float, list[int]]:
    """Seconds until the two local-mode processes share limits again, and each trial's count."""
    started = time.monotonic()
    counts: list[int] = []
    while time.monotonic() - started < timeout:
        counts.append(await shared_limit_check(a, b, f"{prefix}.{len(counts) + 1}.1"))
        if counts[-1] == SHARED_LIMIT:
            return time.monotonic() - started, counts
        await asyncio.sleep(0.5)
    return -1.0, counts


async def until_status(service: Service, status: int, timeout: float) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient(headers=service.headers, timeout=5) as http:
        while time.monotonic() - started < timeout:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(service.url + "/api/v1/models")).status_code == status:
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
    return -1.0


async def scenario(
    deployment: Deployment, local_a: Service, local_b: Service, open_: Service, closed: Service
) -> dict[str, Any]:
    redis = deployment.redis
    assert redis is not None
    load = Load()
    windows: dict[str, tuple[float, float]] = {}
    figures: dict[str, Any] = {}
    problems: list[str] = []
    # The limits are shared while Redis is up (otherwise the check below means nothing).
    if await shared_limit_check(local_a, local_b, "10.1.0.1") != SHARED_LIMIT:
        problems.append("the two local-mode processes did not share limits with Redis up")
    workers = [
        asyncio.create_task(worker(name, service, load))
        for name, service in (("local", local_a), ("open", open_), ("closed", closed))
        for _ in range(3)
    ]
    try:
        await asyncio.sleep(1.0)
        # 1. Killed, then restarted on the same port.
        start = time.monotonic()
        await asyncio.to_thread(redis.kill)
        await asyncio.sleep(OUTAGE_SECONDS)
        windows["killed"] = (start, time.monotonic())
        await asyncio.to_thread(redis.start)
        restarted = time.monotonic()
        figures["closed_recovered_after_restart_s"] = round(
            await until_status(closed, 200, RECOVERY_TIMEOUT), 2
        )
        shared, counts = await until_shared(local_a, local_b, "10.2", RECOVERY_TIMEOUT)
        figures["shared_again_after_restart_s"] = round(shared, 2)
        figures["allowed_per_check_after_restart"] = counts
        if shared < 0:
            problems.append(f"limits not shared again within {RECOVERY_TIMEOUT}s of the restart")
        windows["recovering"] = (restarted, time.monotonic())
        await asyncio.sleep(0.5)
        # 2. Paused: connected, but no answer for PAUSE_SECONDS.
        start = time.monotonic()
        pause = redis.pause(PAUSE_SECONDS)
        await asyncio.to_thread(pause.join, PAUSE_SECONDS + 10)
        windows["paused"] = (start, time.monotonic())
        figures["closed_recovered_after_pause_s"] = round(
            await until_status(closed, 200, RECOVERY_TIMEOUT), 2
        )
        shared, counts = await until_shared(local_a, local_b, "10.3", RECOVERY_TIMEOUT)
        figures["shared_again_after_pause_s"] = round(shared, 2)
        figures["allowed_per_check_after_pause"] = counts
        if shared < 0:
            problems.append(f"limits not shared again within {RECOVERY_TIMEOUT}s of the pause")
        await asyncio.sleep(0.5)
    finally:
        load.stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
    return {"samples": load.samples, "windows": windows, "figures": figures, "problems": problems}


def judge(outcome: dict[str, Any]) -> list[str]:
    problems: list[str] = list(outcome["problems"])
    samples: list[Sample] = outcome["samples"]
    windows: dict[str, tuple[float, float]] = outcome["windows"]

    def within(sample: Sample, window: str, margin: float = 0.3) -> bool:
        start, end = windows.get(window, (0.0, -1.0))
        return start + margin <= sample.started <= end - margin

    for sample in samples:
        if sample.seconds > LATENCY_BOUND:
            problems.append(
                f"{sample.service}: a request took {sample.seconds:.2f}s (bound {LATENCY_BOUND}s)"
            )
        if sample.status == 0:
            problems.append(f"{sample.service}: no answer: {sample.body[:200]!r}")
        elif sample.service in ("local", "open") and sample.status >= 500:
            problems.append(f"{sample.service}: {sample.status} {sample.body[:200]!r}")
        elif sample.service == "closed" and sample.status not in (200, 503):
            problems.append(f"closed: {sample.status} {sample.body[:200]!r}")
        elif sample.service == "closed" and sample.status == 503:
            body = json.loads(sample.body)
            # /models is an OpenAI-compatible route: OpenAI's error shape.
            error = body.get("error") if set(body) == {"error"} else None
            if not isinstance(error, dict) or error.get("code") != "rate_limiter_unavailable":
                problems.append(f"closed: 503 without OpenAI's error schema: {body}")
    for window in ("killed", "paused"):
        during = [s for s in samples if s.service == "closed" and within(s, window)]
        if not during or any(s.status != 503 for s in during):
            statuses = sorted({s.status for s in during})
            problems.append(f"closed mode while Redis was {window}: statuses {statuses}, not 503")
    return _dedupe(problems)


def _dedupe(problems: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for problem in problems:
        key = problem.split(":")[0] + ":" + problem.split(":", 1)[-1][:60]
        seen[key] = seen.get(key, 0) + 1
    firsts: dict[str, str] = {}
    for problem in problems:
        key = problem.split(":")[0] + ":" + problem.split(":", 1)[-1][:60]
        firsts.setdefault(key, problem)
    return [f"{firsts[k]} (x{n})" if n > 1 else firsts[k] for k, n in seen.items()]


@pytest.mark.timeout(300)
def test_redis_killed_paused_restarted(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    common = {
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "RATE_LIMIT_ROUTES": f"/api/v1/engines={SHARED_LIMIT}/minute",
    }

    def service(name: str, mode: str) -> Service:
        env = {**common, "RATE_LIMIT_FAILURE_MODE": mode}
        return Service(deployment, tmp_path / f"service-{name}.log", env=env)

    servers = [
        service("local-a", "local"),
        service("local-b", "local"),
        service("open", "open"),
        service("closed", "closed"),
    ]
    try:
        start_all(*servers)
        outcome = asyncio.run(scenario(deployment, *servers))
    finally:
        for server in servers:
            server.stop()
    problems = judge(outcome)
    for server in servers:
        problems += [f"log {server.log_path.stem}: {p}" for p in server.log_problems()]
    samples: list[Sample] = outcome["samples"]
    latencies = sorted(s.seconds for s in samples)
    statuses: dict[str, dict[int, int]] = {}
    for sample in samples:
        by = statuses.setdefault(sample.service, {})
        by[sample.status] = by.get(sample.status, 0) + 1
    figures.requests = len(samples)
    figures.faults = 2  # one kill-and-restart, one pause
    figures.details = {
        "services": {"local": 2, "open": 1, "closed": 1},
        "outage_seconds": OUTAGE_SECONDS,
        "pause_seconds": PAUSE_SECONDS,
        "statuses": {k: {str(s): n for s, n in v.items()} for k, v in statuses.items()},
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        **outcome["figures"],
    }
    figures.check(problems, limit=30)
