"""A server subprocess on a free loopback port: launched, probed until ready, stopped by PID."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Self

from . import HarnessError
from .ports import LOOPBACK, free_port


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


def pinned_to(cpus: Collection[int]) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child to ``cpus`` and lifts its open-files limit.

    It runs in the child between fork and exec, so the program starts already pinned.
    """
    wanted = set(cpus)

    def pin() -> None:
        os.sched_setaffinity(0, wanted)
        raise_nofile_limit()

    return pin


def http_status(port: int, path: str = "/healthz", timeout: float = 2.0) -> int | None:
    """The status code of ``GET path``, or None while nothing answers HTTP on ``port``."""
    request = f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def uvicorn_command(target: str, port: int, *flags: str, factory: bool = False) -> list[str]:
    """``python -m uvicorn`` serving ``target`` on the loopback ``port``.

    ``factory`` for an app factory such as ``<package>.main:create_app``: the service
    is built by the function its own entry point calls, not found as a module global.
    """
    command = [sys.executable, "-m", "uvicorn", target]
    if factory:
        command.append("--factory")
    return [*command, "--host", LOOPBACK, "--port", str(port), *flags]


class ServerProcess:
    """One server subprocess; subclasses say how it starts (``command``) and when it is ready.

    Its output (stdout and stderr together) goes to ``log_path``, appended, so the
    caller can read what it said after it is gone.
    """

    #: Seconds ``stop`` gives SIGTERM before SIGKILL.
    stop_timeout: float = 15.0

    def __init__(
        self,
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        port: int | None = None,
        cpus: Collection[int] | None = None,
        name: str = "server",
    ) -> None:
        self.port = port or free_port()
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.cpus = cpus
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the server answers its health probe."""
        return http_status(self.port) == 200

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self) -> None:
        """Start the process without waiting for it (``start_all`` launches several at once)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=pinned_to(self.cpus) if self.cpus else None,
            )
        self.exit_code = None

    def wait_ready(self, timeout: float = 90, interval: float = 0.05) -> Self:
        """Poll ``ready`` until it holds; a process that exits or never gets there is killed."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.exit_code = self.process.returncode
                raise HarnessError(
                    f"{self.name} exited at start-up (exit {self.exit_code}); "
                    f"last log lines:\n{self.log_tail()}"
                )
            if self.ready():
                return self
            time.sleep(interval)
        self.kill()
        raise HarnessError(
            f"{self.name} was not ready within {timeout:.0f} s; last log lines:\n{self.log_tail()}"
        )

    def start(self, timeout: float = 90) -> Self:
        self.launch()
        return self.wait_ready(timeout)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int | None:
        """The exit status once the process has ended, or None if it is still running."""
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

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` (``stop_timeout``); the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            if self.wait(self.stop_timeout if timeout is None else timeout) is None:
                self.kill()
        self.exit_code = self.process.returncode
        return self.exit_code

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
