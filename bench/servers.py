"""The apps under test and the processes that serve them: render, start, pin, stop.

Every app is one uvicorn worker (uvloop + httptools) on 127.0.0.1, pinned to the
server core, started fresh for each measurement so that no run inherits another
run's leftovers (an unpaced stream whose client left keeps running until it has
written its last token; see README).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TEMPLATE = BENCH.parent
APPS_DIR = BENCH / "apps"
HOST = "127.0.0.1"
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


class BenchError(RuntimeError):
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
    variant: Mapping[str, str] = field(default_factory=dict)
    needs_redis: bool = False
    # A rendered file that must contain this text for the app to exist yet; an app
    # whose feature is still unwritten is reported as pending, not as a failure.
    requires: tuple[str, str] | None = None
    wrapper: bool = False


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
            "streaming_service.main:app",
            "rendered default variant, full stack, in-memory rate limiter",
        ),
        AppSpec(
            "ours-nolimit",
            "service",
            "streaming_service.main:app",
            "rendered default variant, RATE_LIMIT_ENABLED=false",
            env={"RATE_LIMIT_ENABLED": "false"},
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
            "streaming_service.main:app",
            "rendered use_redis=true variant, Redis rate limiter",
            variant={"use_redis": "true"},
            needs_redis=True,
            requires=("settings.py", "redis_url"),
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _pin_server() -> None:
    # Runs in the child between fork and exec, so uvicorn starts already pinned.
    os.sched_setaffinity(0, {SERVER_CORE})
    raise_nofile()


class Renderer:
    """Renders each template variant once per harness run, into the work directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._rendered: dict[tuple[tuple[str, str], ...], Path] = {}

    def source_dir(self, spec: AppSpec) -> Path:
        """The rendered project's ``src`` folder (what goes on PYTHONPATH)."""
        key = tuple(sorted(spec.variant.items()))
        if key not in self._rendered:
            out = self.workdir / ("render-" + ("-".join(f"{k}={v}" for k, v in key) or "default"))
            out.mkdir(parents=True, exist_ok=True)
            command = [
                sys.executable,
                "-m",
                "cookiecutter",
                str(TEMPLATE),
                "--no-input",
                "--overwrite-if-exists",
                "-o",
                str(out),
                *(f"{k}={v}" for k, v in key),
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                # The hooks say what is wrong on an "ERROR:" line; lead with it.
                errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
                first = errors[0] if errors else (done.stderr.strip().splitlines() or ["?"])[-1]
                raise BenchError(
                    f"cookiecutter failed for {dict(key)}: {first}\n{done.stderr[-2000:]}"
                )
            projects = [p for p in out.iterdir() if (p / "src").is_dir()]
            if len(projects) != 1:
                raise BenchError(f"cannot find the rendered project in {out}")
            self._rendered[key] = projects[0] / "src"
        return self._rendered[key]

    def pending_reason(self, spec: AppSpec) -> str | None:
        """Why ``spec`` cannot be measured yet, or None when it can."""
        if spec.requires is None:
            return None
        try:
            src = self.source_dir(spec)
        except BenchError as exc:
            return f"the variant does not render: {str(exc).splitlines()[0]}"
        name, text = spec.requires
        found = [p for p in src.rglob(name) if text in p.read_text(encoding="utf-8")]
        if not found:
            return f"the rendered variant has no {text!r} in {name} yet"
        return None


def http_ready(port: int, path: str = "/healthz", timeout: float = 1.0) -> bool:
    """True once the server answers HTTP at all (a 404 counts: the bench apps have no probe)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            return sock.recv(16).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


class Server:
    """One uvicorn worker serving one app, pinned to the server core."""

    def __init__(
        self,
        spec: AppSpec,
        renderer: Renderer,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.spec = spec
        self.port = free_port()
        self.log_path = workdir / f"server-{spec.name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        base = dict(SERVICE_ENV if spec.kind == "service" else BENCH_APP_ENV)
        base.update(spec.env)
        base.update(env or {})
        if redis_url is not None:
            base["REDIS_URL"] = redis_url
        self.env = base
        if spec.kind == "service":
            self.app_dir = renderer.source_dir(spec)
        else:
            self.app_dir = APPS_DIR
        # The service reads .env from its working directory: give it an empty one.
        self.cwd = workdir / "cwd"
        self.cwd.mkdir(exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            self.spec.target,
            "--app-dir",
            str(self.app_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
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
        ]

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
        env.update(self.env)
        paths = [self.app_dir, APPS_DIR] if self.spec.wrapper else [self.app_dir]
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_pin_server,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.spec.name} exited at start-up:\n{self.log_tail()}")
            if http_ready(self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"{self.spec.name} did not answer within {timeout:.0f} s")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: a worker still writing streams nobody reads must not linger."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


class RedisServer:
    """A private redis-server on a free port (never the system one), pinned to the client core."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        binary = "redis-server"
        log = (self.workdir / f"redis-{self.port}.log").open("wb")
        command = [binary, "--port", str(self.port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir)]
        try:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CORE}),
            )
        except FileNotFoundError:
            raise BenchError("redis-server is not installed") from None
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.command("PING").startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise BenchError("redis-server did not answer PING")

    def command(self, line: str) -> bytes:
        with socket.create_connection((HOST, self.port), timeout=2) as sock:
            sock.sendall(line.encode() + b"\r\n")
            return sock.recv(65536)

    def commands_processed(self) -> int:
        for line in self.command("INFO stats").splitlines():
            if line.startswith(b"total_commands_processed:"):
                return int(line.split(b":")[1])
        return 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def maybe_redis(spec: AppSpec, workdir: Path) -> Iterator[RedisServer | None]:
    if not spec.needs_redis:
        yield None
        return
    with RedisServer(workdir) as redis:
        yield redis
