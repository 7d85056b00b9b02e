"""Real ``redis-server`` processes for the tests, and the service run as a subprocess.

Every server listens on a free loopback port (never 6379, where a developer's
own Redis may be), keeps nothing on disk, and is stopped by its PID.
``conftest.py`` imports the fixtures below; two are autouse, so that in this
variant every test has a Redis: one server for the whole session (its URL in
``REDIS_URL``, which the settings read), emptied before each test as the
in-memory limiter of a fresh app would be.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from prometheus_client.parser import text_string_to_metric_families

import {{cookiecutter.package_name}} as package
from {{cookiecutter.package_name}}.ratelimit.redis.limiter import RedisRateLimiter

INSTALL_HINT = (
    "redis-server is required by the Redis rate-limit tests and was not found on PATH; "
    "install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or "
    "`brew install redis` (macOS)"
)
PACKAGE = package.__name__
# The service subprocess must import this source tree, installed or not.
SOURCE_ROOT = str(Path(package.__file__).resolve().parents[1])


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


def redis_server_binary() -> str:
    """The ``redis-server`` on PATH; its absence fails the test (never skips it)."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


class RedisServer:
    """One ``redis-server`` on 127.0.0.1; ``kill`` and ``start`` again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer within 10 s")

    def kill(self) -> None:
        """Gone at once, like a crash: no clean close of client connections."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def pause(self) -> None:
        """Hung, not gone: connections are accepted and never answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signum)
        # A paused server only dies once it runs again.
        os.kill(process.pid, signal.SIGCONT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# The settings read these from the environment, so every app of the session uses
# this Redis. The timeout is production's 100 ms times 20: it also counts time the
# event loop is busy, and a test firing 100 requests into one process on a loaded
# CI machine would see Redis "time out" while it is fine. Tests about timeouts
# set their own.
SESSION_ENV = {"REDIS_TIMEOUT_MS": "2000"}


@pytest.fixture(scope="session", autouse=True)
def redis_session() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    environment = {**SESSION_ENV, "REDIS_URL": server.url}
    previous = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        yield server
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture(autouse=True)
def empty_redis(redis_session: RedisServer) -> RedisServer:
    """Each test starts with no counters and no leases, like a fresh in-memory limiter."""
    with redis_session.client() as client:
        client.flushall()
    return redis_session


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A server of the test's own, for tests that kill and restart it."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


LimiterFactory = Callable[..., Any]


@pytest.fixture
async def redis_limiter(empty_redis: RedisServer) -> AsyncIterator[LimiterFactory]:
    """``await redis_limiter(**kwargs)``: a started ``RedisRateLimiter``, stopped at the end."""
    started: list[RedisRateLimiter] = []

    async def start(url: str | None = None, **kwargs: Any) -> RedisRateLimiter:
        kwargs.setdefault("timeout", float(SESSION_ENV["REDIS_TIMEOUT_MS"]) / 1000)
        limiter = RedisRateLimiter(url or empty_redis.url, **kwargs)
        await limiter.start(None)
        started.append(limiter)
        return limiter

    yield start
    for limiter in started:
        await limiter.stop(None)


def redis_now_ms(server: RedisServer) -> int:
    """Redis' clock, the one the limiter's windows and leases follow."""
    with server.client() as client:
        seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def at_window_offset(server: RedisServer, window_ms: int, low: int, high: int) -> int:
    """Sleep until Redis' clock is ``low`` to ``high`` ms into a window; return the offset."""
    while True:
        offset = redis_now_ms(server) % window_ms
        if low <= offset <= high:
            return offset
        await asyncio.sleep(max((low - offset) % window_ms, 5) / 1000)


@asynccontextmanager
async def client_commands(server: RedisServer) -> AsyncIterator[list[str]]:
    """Every command clients send while the block runs, as MONITOR shows them.

    Commands a Lua script runs inside Redis are left out, and so are the ones
    this helper sends. The list is filled when the block exits.
    """
    sent: list[str] = []
    marker = "end-of-block-" + uuid.uuid4().hex
    watcher = redis.asyncio.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    async with watcher, watcher.monitor() as monitor:
        yield sent
        with server.client() as client:
            client.echo(marker)
        async with asyncio.timeout(5):
            while True:
                entry = await monitor.next_command()
                command = str(entry["command"])
                if marker in command:
                    break
                if entry.get("client_type") != "lua" and not command.startswith("HELLO"):
                    sent.append(command)


def command_calls(server: RedisServer) -> dict[str, int]:
    """Calls per command since the last ``CONFIG RESETSTAT``, from ``INFO commandstats``."""
    with server.client() as client:
        stats: dict[str, dict[str, Any]] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def reset_command_stats(server: RedisServer) -> None:
    with server.client() as client:
        client.config_resetstat()


@dataclass(frozen=True)
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: nothing is given back."""
        self.process.kill()
        self.process.wait(timeout=10)


@asynccontextmanager
async def service_process(
    log_file: Path, workers: int, **env: str
) -> AsyncIterator[ServiceProcess]:
    """``python -m <package>`` with ``workers`` uvicorn workers, on a port of its own.

    Ready once every worker has logged its start-up; stopped by its PID.
    """
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE_ROOT, os.environ.get("PYTHONPATH")])),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "json",
        **env,
    }
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", PACKAGE], env=environment, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while log_file.read_text().count("Application startup complete") < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("service did not start:\n" + log_file.read_text()[-3000:])
            await asyncio.sleep(0.05)
        yield ServiceProcess(f"http://127.0.0.1:{port}", process)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


# A worker that takes stream leases and then dies without giving them back.
CRASHING_HOLDER = """
import asyncio, sys
from {package}.ratelimit.redis.limiter import RedisRateLimiter

async def main() -> None:
    limiter = RedisRateLimiter(sys.argv[1], timeout=2.0, lease_seconds=float(sys.argv[3]))
    await limiter.start(None)
    for _ in range(int(sys.argv[4])):
        assert await limiter.acquire_stream(sys.argv[2], int(sys.argv[5])) is not None
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def leases_of_a_crashed_worker(
    url: str, key: str, count: int, max_streams: int, lease_seconds: float
) -> None:
    """Run a worker that takes ``count`` leases, then SIGKILL it: nothing releases them."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    script = CRASHING_HOLDER.format(package=PACKAGE)
    args = [url, key, str(lease_seconds), str(count), str(max_streams)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, env=environment, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"held", line
    finally:
        process.kill()
        await process.wait()


def leases_in_redis(server: RedisServer, *, live: bool = False) -> int:
    """Open-stream leases in Redis, by every instance and caller.

    A lapsed lease stays in its set until the next acquire for that caller drops
    it; ``live=True`` counts only those not lapsed yet (scored by expiry).
    """
    low = f"({redis_now_ms(server)}" if live else "-inf"
    with server.client() as client:
        return sum(int(client.zcount(key, low, "+inf")) for key in client.keys("rl:v1:*:streams"))


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``check`` (sync or async) until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        await asyncio.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample from a Prometheus text exposition, or ``None`` if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def http_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """Straight to loopback, whatever proxy the environment names."""
    return httpx.AsyncClient(base_url=base_url, trust_env=False, **kwargs)
