"""What every reliability test shares: variants, service processes, Redis, metrics, logs.

A rendered variant is started the way it is deployed: ``python -m <package>`` (or
``python -m uvicorn <package>.main:app`` where a test needs a uvicorn flag the entry
point does not expose, such as ``--backlog``) in a subprocess on a free loopback port,
with its log (JSON lines on stderr) written to a file the test reads afterwards.
Every process a test starts is stopped by its PID, never by name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import PYTHON, ROOT, VARIANTS, Variant, clean_env

RESULTS_DIR = ROOT / ".cache" / "reliability"

# The variants this suite runs on (see RELIABILITY.md).
DEFAULT = "noredis-nojwt-nogrpc-nographql"
ALL_ON = "redis-jwt-grpc-graphql"
REDIS = "redis-nojwt-nogrpc-nographql"
BY_ID: dict[str, Variant] = {v.id: v for v in VARIANTS}

API = "/api/v1"
MiB = 1024 * 1024

# Settings every service under test gets unless a test overrides them: no pacing,
# limits out of the way, JSON logs, a short grace period.
BASE_ENV: dict[str, str] = {
    "ENVIRONMENT": "test",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    "HOST": "127.0.0.1",
    "RATE_LIMIT_IP": "1000000/minute",
    "RATE_LIMIT_USER": "1000000/minute",
    "MAX_CONCURRENT_STREAMS": "100000",
    "LLM_MAX_CONCURRENCY": "10000",
    "FAKE_LLM_DELAY_MS": "0",
    "FAKE_LLM_FIRST_TOKEN_DELAY_MS": "0",
    "SHUTDOWN_GRACE_SECONDS": "5",
    "PYTHONUNBUFFERED": "1",
}


def variant_params(group: str, *ids: str) -> list[Any]:
    """Variants as parameters; each (test module, variant) is one xdist group of its own."""
    return [
        pytest.param(
            BY_ID[variant_id],
            id=variant_id,
            marks=pytest.mark.xdist_group(f"reliability-{group}-{variant_id}"),
        )
        for variant_id in ids
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------- project


@dataclass
class Project:
    """A rendered variant on disk."""

    path: Path
    variant: Variant

    @property
    def package(self) -> str:
        found = [p.name for p in (self.path / "src").iterdir() if (p / "__init__.py").is_file()]
        assert len(found) == 1, f"expected one package under src/, found {found}"
        return found[0]

    @property
    def src(self) -> Path:
        return self.path / "src"

    @property
    def package_dir(self) -> Path:
        return self.src / self.package

    @property
    def tests(self) -> Path:
        return self.path / "tests"

    def has(self, feature: str) -> bool:
        return bool(self.variant.context[f"use_{feature}"])

    def env_example(self) -> dict[str, str]:
        """Every ``NAME=value`` of the rendered ``.env.example``."""
        values: dict[str, str] = {}
        for line in (self.path / ".env.example").read_text(encoding="utf-8").splitlines():
            match = re.match(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip())
            if match:
                values[match.group(1)] = match.group(2).strip().strip('"')
        return values

    def setting(self, *patterns: str) -> str:
        """The first ``.env.example`` name matching one of ``patterns`` (regexes), or fail."""
        names = list(self.env_example())
        for pattern in patterns:
            for name in names:
                if re.fullmatch(pattern, name):
                    return name
        pytest.fail(
            f"{self.variant.id}: no setting matching {patterns} in .env.example "
            "(has the feature's module landed?)",
            pytrace=False,
        )

    def import_file(self, relative: str, name: str) -> ModuleType:
        """A standalone file of the rendered project (test helper, generated stubs) as a module."""
        path = self.path / relative
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None, path
        assert spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # Its sibling helpers (a test helper may import tests/threaded_server.py).
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        return module


# --------------------------------------------------------------------------- redis


class RedisServer:
    """A ``redis-server`` of our own on a free port, controlled by PID."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.debug_command = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command_line(self) -> list[str]:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        if self.debug_command:
            command += ["--enable-debug-command", "local"]
        return command

    def start(self, timeout: float = 10) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self._command_line(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        ok = wait_until(self.ping, timeout)
        if not ok and self.process.poll() is not None and self.debug_command:
            # A Redis older than 7 does not know --enable-debug-command.
            self.debug_command = False
            return self.start(timeout)
        assert ok, f"redis-server on port {self.port} did not start"
        return self

    def ping(self) -> bool:
        try:
            return self.command("PING", timeout=0.5) == b"+PONG"
        except OSError:
            return False

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """One command over RESP; the first reply line."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.strip()

    def pause(self, seconds: float) -> threading.Thread:
        """Make Redis unresponsive for ``seconds`` (``DEBUG SLEEP``, else SIGSTOP/SIGCONT)."""

        def run() -> None:
            if self.debug_command:
                self.command("DEBUG", "SLEEP", str(seconds), timeout=seconds + 5)
            else:
                assert self.process is not None
                os.kill(self.process.pid, signal.SIGSTOP)
                time.sleep(seconds)
                os.kill(self.process.pid, signal.SIGCONT)

        thread = threading.Thread(target=run, name="redis-pause", daemon=True)
        thread.start()
        return thread

    def kill(self) -> None:
        """SIGKILL: the server vanishes with every connection."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None


# --------------------------------------------------------------------------- deployment


@dataclass
class Deployment:
    """What a variant needs around it: settings for its features and a client's credentials."""

    project: Project
    env: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    redis: RedisServer | None = None
    grpc_metadata: tuple[tuple[str, str], ...] = ()
    transports: tuple[str, ...] = ("sse", "openai", "websocket")


def _conftest_auth(project: Project) -> tuple[dict[str, str], dict[str, Any]]:
    """``AUTH_HEADERS`` and ``TEST_DEFAULTS`` of the rendered project's tests/conftest.py."""
    code = (
        "import json, conftest\n"
        "def plain(o):\n"
        "    return o.get_secret_value() if hasattr(o, 'get_secret_value') else str(o)\n"
        "print(json.dumps({'headers': dict(conftest.AUTH_HEADERS),"
        " 'defaults': dict(conftest.TEST_DEFAULTS)}, default=plain))\n"
    )
    env = {
        **clean_env(),
        "PYTHONPATH": os.pathsep.join([str(project.src), str(project.tests)]),
        "ENVIRONMENT": "test",
    }
    result = subprocess.run(
        [PYTHON, "-c", code],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        return {}, {}
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return data["headers"], data["defaults"]


def _as_env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def deploy(project: Project, workdir: Path, stack: contextlib.ExitStack) -> Deployment:
    """Settings and credentials for the variant's features; starts Redis when it has one."""
    env: dict[str, str] = {}
    deployment = Deployment(project=project, env=env)
    transports = ["sse", "openai", "websocket"]
    if project.has("redis"):
        redis = RedisServer(workdir / "redis").start()
        stack.callback(redis.stop)
        deployment.redis = redis
        env[project.setting(r"REDIS_URL", r"[A-Z_]*REDIS[A-Z_]*_URL")] = redis.url
    if project.has("jwt"):
        headers, defaults = _conftest_auth(project)
        for key, value in defaults.items():
            if "jwt" in key.lower():
                env[key.upper()] = _as_env_value(value)
        secret_name = project.setting(r"JWT_SECRET", r"[A-Z_]*JWT[A-Z_]*SECRET[A-Z_]*")
        users_file = [n for n in project.env_example() if re.fullmatch(r"JWT_USERS?_(FILE|DB)", n)]
        for name in users_file:
            env[name] = str(workdir / "users.db")
        if not headers.get("Authorization"):
            import jwt  # PyJWT: a dependency of the jwt variants

            secret = env.get(secret_name) or "reliability-suite-jwt-secret-0123456789abcdef"
            env[secret_name] = secret
            claims: dict[str, Any] = {"sub": "reliability", "exp": int(time.time()) + 3600}
            for claim, setting in (("aud", "JWT_AUDIENCE"), ("iss", "JWT_ISSUER")):
                if env.get(setting):
                    claims[claim] = env[setting]
            headers = {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}
        deployment.headers = {"Authorization": headers["Authorization"]}
        deployment.grpc_metadata = (("authorization", headers["Authorization"]),)
    if project.has("grpc"):
        env[project.setting(r"GRPC_PORT", r"[A-Z_]*GRPC[A-Z_]*PORT")] = str(free_port())
        with contextlib.suppress(BaseException):
            env[project.setting(r"GRPC_HOST")] = "127.0.0.1"
        transports.append("grpc")
    if project.has("graphql"):
        transports.append("graphql")
    deployment.transports = tuple(transports)
    return deployment


# --------------------------------------------------------------------------- service


class Service:
    """One server process of a rendered variant."""

    def __init__(
        self,
        deployment: Deployment,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        uvicorn_flags: list[str] | None = None,
    ) -> None:
        self.deployment = deployment
        self.project = deployment.project
        self.log_path = log_path
        self.port = free_port()
        self.env = {
            **clean_env(),
            **BASE_ENV,
            **deployment.env,
            **(env or {}),
            "PORT": str(self.port),
            "PYTHONPATH": str(self.project.src),
        }
        self.uvicorn_flags = uvicorn_flags
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.deployment.headers)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def grpc_port(self) -> int | None:
        for name, value in self.env.items():
            if re.fullmatch(r"[A-Z_]*GRPC[A-Z_]*PORT", name):
                return int(value)
        return None

    def command(self) -> list[str]:
        package = self.project.package
        if self.uvicorn_flags is None:
            return [PYTHON, "-m", package]
        grace = self.env.get("SHUTDOWN_GRACE_SECONDS", "5")
        return [
            PYTHON,
            "-m",
            "uvicorn",
            f"{package}.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--timeout-graceful-shutdown",
            grace,
            "--no-access-log",
            *self.uvicorn_flags,
        ]

    def start(self, timeout: float = 90) -> Service:
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.project.path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self, timeout: float = 90) -> Service:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url + "/healthz").status_code == 200:
                        return self
                time.sleep(0.05)
        self.kill()
        pytest.fail(
            f"{self.project.variant.id}: the service did not start "
            f"(exit {self.exit_code}); last log lines:\n{self.log_tail()}",
            pytrace=False,
        )

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def connections(self) -> list[Any]:
        return list(psutil.Process(self.pid).net_connections(kind="tcp"))

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int | None:
        assert self.process is not None
        try:
            self.exit_code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        if self.process is not None:
            self.exit_code = self.process.returncode

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()
        self.exit_code = self.process.returncode
        return self.exit_code

    # --- what it says ------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def log_problems(self, allow: Callable[[dict[str, Any]], bool] | None = None) -> list[str]:
        """Error-level records, tracebacks and error-looking non-JSON lines of the log."""
        return log_problems(self.log_text(), allow)

    # --- metrics -----------------------------------------------------------

    def metrics(self) -> Metrics:
        with httpx.Client(timeout=60) as http:
            response = http.get(self.url + "/metrics")
        response.raise_for_status()
        return Metrics.parse(response.text)


ERROR_LEVELS = frozenset({"error", "critical", "exception", "fatal"})
NON_JSON_ERROR = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|^E\d{4} |Exception", re.MULTILINE)


def log_problems(text: str, allow: Callable[[dict[str, Any]], bool] | None = None) -> list[str]:
    """One line per distinct error (event, logger, last line of its traceback), with a count."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if NON_JSON_ERROR.search(line):
                key = f"non-JSON error output: {line[:300]}"
                found[key] = found.get(key, 0) + 1
            continue
        if not isinstance(record, dict):
            continue
        level = str(record.get("level", "")).lower()
        bad = level in ERROR_LEVELS or "Traceback" in line
        if bad and not (allow is not None and allow(record)):
            summary = {k: record[k] for k in ("event", "logger", "level", "path") if k in record}
            trace = str(record.get("exception", "")).strip().splitlines()
            key = f"{json.dumps(summary)} {trace[-1][:300] if trace else ''}".strip()
            found[key] = found.get(key, 0) + 1
    return [f"{key} (x{count})" if count > 1 else key for key, count in found.items()]


# Client faults that uvicorn itself logs at ERROR level, with a traceback, although it
# handles them correctly (closes the socket with the right code). Documented in
# RELIABILITY.md; a log-based alert should not page on them.
def uvicorn_client_fault(record: dict[str, Any]) -> bool:
    return record.get("logger") == "uvicorn.error" and record.get("event") in {
        "Invalid UTF-8 sequence received from client.",
    }


@dataclass
class Metrics:
    """Samples of one /metrics scrape: ``(name, labels) -> value``."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return cls(samples)

    def sum(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for (n, labels), value in self.samples.items():
            if n == name:
                key = dict(labels).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out

    def minus(self, before: Metrics) -> Metrics:
        keys = set(self.samples) | set(before.samples)
        return Metrics({k: self.samples.get(k, 0.0) - before.samples.get(k, 0.0) for k in keys})


class RssSampler:
    """Samples a process's RSS in a thread; ``peak`` and every sample."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.monotonic() - start, self.process.memory_info().rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


def start_all(*items: Service, timeout: float = 90) -> None:
    """Launch several services at once, then wait for each to be ready."""
    for service in items:
        service.launch()
    for service in items:
        service.wait_ready(timeout)


@contextlib.contextmanager
def services(*items: Service) -> Iterator[tuple[Service, ...]]:
    """Start services; stop each by PID at the end, whatever happened."""
    started: list[Service] = []
    try:
        for service in items:
            started.append(service.start())
        yield tuple(started)
    finally:
        for service in started:
            service.stop()
