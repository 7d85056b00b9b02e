"""What every reliability test shares: variants, service processes, Redis, metrics, logs.

A rendered variant is started the way it is deployed: ``python -m <package>`` (or
``python -m uvicorn --factory <package>.main:create_app`` where a test needs a uvicorn
flag the entry point does not expose, such as ``--backlog``) in a subprocess on a free
loopback port, with its log (JSON lines on stderr) written to a file the test reads
afterwards. Rendering, the process and Redis come from the shared ``harness`` package;
every process a test starts is stopped by its PID, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import psutil
import pytest
from harness import HarnessError, render
from harness.ports import free_port
from harness.process import ServerProcess, uvicorn_command
from harness.redis import RedisServer
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


# --------------------------------------------------------------------------- project


class Project(render.Project):
    """A rendered variant on disk."""

    def __init__(self, path: Path, variant: Variant) -> None:
        super().__init__(path, variant.context)
        self.variant = variant

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


class Service(ServerProcess):
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
        port = free_port()
        super().__init__(
            cwd=self.project.path,
            env={
                **clean_env(),
                **BASE_ENV,
                **deployment.env,
                **(env or {}),
                "PORT": str(port),
                "PYTHONPATH": str(self.project.src),
            },
            log_path=log_path,
            port=port,
            name=f"{self.project.variant.id}: the service",
        )
        self.uvicorn_flags = uvicorn_flags

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.deployment.headers)

    @property
    def grpc_port(self) -> int | None:
        for name, value in self.env.items():
            if re.fullmatch(r"[A-Z_]*GRPC[A-Z_]*PORT", name):
                return int(value)
        return None

    def command(self) -> list[str]:
        if self.uvicorn_flags is None:
            return [PYTHON, "-m", self.project.package]
        grace = self.env.get("SHUTDOWN_GRACE_SECONDS", "5")
        return uvicorn_command(
            self.project.app_factory,
            self.port,
            "--timeout-graceful-shutdown",
            grace,
            "--no-access-log",
            *self.uvicorn_flags,
            factory=True,
        )

    def wait_ready(self, timeout: float = 90, interval: float = 0.05) -> Self:
        try:
            return super().wait_ready(timeout, interval)
        except HarnessError:
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

    # --- what it says ------------------------------------------------------

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
