"""One limit for every worker: the service with four uvicorn processes and one Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import AUTH_HEADERS, TEST_DEFAULTS
from redis_helpers import RedisServer, at_window_offset, http_client, service_process

WORKERS = 4
LIMIT = "50/minute"


async def test_four_workers_allow_exactly_the_limit(
    tmp_path: Path, empty_redis: RedisServer
) -> None:
    # The same settings as the in-process tests (and credentials, where the project
    # requires them), through the environment the workers read.
    env = {name.upper(): str(value) for name, value in TEST_DEFAULTS.items()}
    env.update(RATE_LIMIT_IP=LIMIT, RATE_LIMIT_USER=LIMIT, REDIS_URL=empty_redis.url)
    async with service_process(tmp_path / "service.log", WORKERS, **env) as service:
        # 200 requests take a second or two: keep them inside one minute's window.
        await at_window_offset(empty_redis, 60_000, 0, 52_000)
        limits = httpx.Limits(max_connections=200)
        async with http_client(
            service.url, limits=limits, headers=AUTH_HEADERS, timeout=30
        ) as http:
            responses = await asyncio.gather(*(http.get("/api/v1/models") for _ in range(200)))
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 50, sorted(set(statuses))
    assert statuses.count(429) == 150
    log = (tmp_path / "service.log").read_text()
    # Redis decided every one of them: no worker fell back to its own buckets.
    assert "ratelimit.redis_down" not in log
    assert log.count("Application startup complete") == WORKERS
