"""The apps under test and the processes that serve them: render, start, pin, stop.

Every app is one uvicorn worker (uvloop + httptools) on 127.0.0.1, pinned to the
server core, started fresh for each measurement so that no run inherits another
run's leftovers (an unpaced stream whose client left keeps running until it has
written its last token; see README). Rendering, the worker process and Redis come
from the ``harness`` package in ``tests/``, which the template's tests use too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
TEMPLATE = BENCH.parent
# pytest finds the harness through pyproject's pythonpath; `python bench/run.py` needs
# it said here. After the script's own folder, so that bench's modules come first.
if str(TEMPLATE / "tests") not in sys.path:
    sys.path.insert(1, str(TEMPLATE / "tests"))

from harness import HarnessError  # noqa: E402
from harness.ports import LOOPBACK, free_port  # noqa: E402
from harness.process import ServerProcess, http_status, uvicorn_command  # noqa: E402
from harness.redis import RedisServer  # noqa: E402
from harness.render import Project, RenderCache  # noqa: E402

APPS_DIR = BENCH / "apps"
HOST = LOOPBACK
STREAM_PATH = "/api/v1/chat/stream"
MODELS_PATH = "/api/v1/models"

# The service's settings for every run: limits that never refuse, quiet logs, and
# the full middleware stack on. A figure overrides what it varies.
SERVICE_ENV: dict[str, str] = {
    "ENVIRONMENT": "development",
    "LOG_LEVEL": "WARNING",
    "FAKE_LLM_DELAY_MS": "0",
    "FAKE_LLM_FIRST_TOKEN_DELAY_MS": "0",
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_IP": "100000000/minute",
    "RATE_LIMIT_USER": "100000000/minute",
    "MAX_CONCURRENT_STREAMS": "100000",
    "MAX_TOKENS_LIMIT": "32768",
    "CORS_ORIGINS": "https://example.com",
}
BENCH_APP_ENV: dict[str, str] = {"FAKE_LLM_DELAY_MS": "0", "FAKE_LLM_FIRST_TOKEN_DELAY_MS": "0"}


def cores() -> tuple[int, int]:
    """(server core, client core): separate ones whenever the machine has two."""
    available = sorted(os.sched_getaffinity(0))
    return available[0], available[1] if len(available) > 1 else available[0]


SERVER_CORE, CLIENT_CORE = cores()


class BenchError(HarnessError):
    """A server could not be rendered, started or reached."""


@dataclass(frozen=True)
class AppSpec:
    """One app under test. ``kind`` "bench" lives in bench/apps; "service" is rendered.

    A "service" app whose ``target`` module is in bench/apps (a wrapper around the
    rendered package) sets ``wrapper``: both folders then go on PYTHONPATH.
    """

    name: str
    kind: str
    target: str
    description: str
    env: Mapping[str, str] = field(default_factory=dict)
    # Cookiecutter answers for a "service" app; the default variant when empty.
    variant: Mapping[str, Any] = field(default_factory=dict)
    needs_redis: bool = False
    # A rendered file that must contain this text for the app to exist yet; an app
    # whose feature is still unwritten is reported as pending, not as a failure.
    requires: tuple[str, str] | None = None
    wrapper: bool = False
    # ``target`` is a function that builds the app (uvicorn --factory).
    factory: bool = False


APPS: dict[str, AppSpec] = {
    spec.name: spec
    for spec in (
        AppSpec(
            "floor",
            "bench",
            "floor:app",
            "bare Starlette, one route, StreamingResponse of hand-written frames",
        ),
        AppSpec(
            "naive",
            "bench",
            "naive:app",
            "FastAPI + sse-starlette + 5 BaseHTTPMiddleware + slowapi decorator",
        ),
        AppSpec(
            "ours",
            "service",
            "streaming_service.main:create_app",
            "rendered default variant, full stack, in-memory rate limiter",
            factory=True,
        ),
        AppSpec(
            "ours-nolimit",
            "service",
            "streaming_service.main:create_app",
            "rendered default variant, RATE_LIMIT_ENABLED=false",
            env={"RATE_LIMIT_ENABLED": "false"},
            factory=True,
        ),
        AppSpec(
            "ours-bare",
            "service",
            "bare_service:app",
            "rendered default variant's own app with its middleware stack removed",
            wrapper=True,
        ),
        AppSpec(
            "ours-redis",
            "service",
            "streaming_service.main:create_app",
            "rendered use_redis=true variant, Redis rate limiter",
            variant={"use_redis": True},
            needs_redis=True,
            requires=("settings.py", "redis_url"),
            factory=True,
        ),
        AppSpec(
            "fastapi-sse",
            "bench",
            "fastapi_sse:sse_app",
            "FastAPI, fastapi.sse EventSourceResponse + ServerSentEvent, no middleware",
        ),
        AppSpec(
            "fastapi-plain",
            "bench",
            "fastapi_sse:plain_app",
            "FastAPI, StreamingResponse of hand-written frames, no middleware",
        ),
    )
}


def source_dir(renders: RenderCache, spec: AppSpec) -> Path:
    """The rendered project's ``src`` folder (what goes on PYTHONPATH)."""
    rendered = renders.get(spec.variant)
    if not rendered.ok or rendered.project is None:
        raise BenchError(
            f"cookiecutter failed for {dict(spec.variant)}: {rendered.error}\n"
            f"{rendered.output[-2000:]}"
        )
    return Project(rendered.project, spec.variant).src


def pending_reason(renders: RenderCache, spec: AppSpec) -> str | None:
    """Why ``spec`` cannot be measured yet, or None when it can."""
    if spec.requires is None:
        return None
    try:
        src = source_dir(renders, spec)
    except BenchError as exc:
        return f"the variant does not render: {str(exc).splitlines()[0]}"
    name, text = spec.requires
    found = [p for p in src.rglob(name) if text in p.read_text(encoding="utf-8")]
    if not found:
        return f"the rendered variant has no {text!r} in {name} yet"
    return None


class Server(ServerProcess):
    """One uvicorn worker serving one app, pinned to the server core."""

    # A worker still writing streams nobody reads must not linger into the next run.
    stop_timeout = 3.0

    def __init__(
        self,
        spec: AppSpec,
        renders: RenderCache,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.spec = spec
        settings = dict(SERVICE_ENV if spec.kind == "service" else BENCH_APP_ENV)
        settings.update(spec.env)
        settings.update(env or {})
        if redis_url is not None:
            settings["REDIS_URL"] = redis_url
        if spec.kind == "service":
            self.app_dir = source_dir(renders, spec)
        else:
            self.app_dir = APPS_DIR
        paths = [self.app_dir, APPS_DIR] if spec.wrapper else [self.app_dir]
        full_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
        full_env.update(settings)
        full_env["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The service reads .env from its working directory: give it an empty one.
        cwd = workdir / "cwd"
        cwd.mkdir(exist_ok=True)
        port = free_port()
        super().__init__(
            cwd=cwd,
            env=full_env,
            log_path=workdir / f"server-{spec.name}-{port}.log",
            port=port,
            cpus={SERVER_CORE},
            name=spec.name,
        )

    def command(self) -> list[str]:
        return uvicorn_command(
            self.spec.target,
            self.port,
            "--app-dir",
            str(self.app_dir),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "16384",
            "--timeout-graceful-shutdown",
            "1",
            factory=self.spec.factory,
        )

    def ready(self) -> bool:
        # Any answer will do: the bench apps have no health route, so theirs is a 404.
        return http_status(self.port) is not None


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, quiet: float = 0.02, timeout: float = 10.0) -> bool:
    """Wait until the process uses less than ``quiet`` of a core over 100 ms."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_seconds(pid)
        if now - last <= quiet * 0.1 + 1e-9:
            return True
        last = now
    return False


def busy_cores(interval: float = 0.5) -> float:
    """Cores' worth of CPU the whole machine used over ``interval`` seconds."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    cores = len(os.sched_getaffinity(0))
    return (busy1 - busy0) / max(1, total1 - total0) * cores


def wait_quiet(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait until the machine uses under ``threshold`` cores, at most ``max_wait`` seconds.

    The machine is shared with other people's test runs; measuring while they run
    reports their CPU as the service's slowness. Returns (seconds waited, last load).
    """
    started = time.monotonic()
    load = busy_cores()
    while load > threshold and time.monotonic() - started < max_wait:
        load = busy_cores(1.0)
    return time.monotonic() - started, load


@contextlib.contextmanager
def maybe_redis(spec: AppSpec, workdir: Path) -> Iterator[RedisServer | None]:
    if not spec.needs_redis:
        yield None
        return
    with RedisServer(workdir, cpus={CLIENT_CORE}) as redis:
        yield redis
