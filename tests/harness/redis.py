"""A private ``redis-server`` on a free loopback port: never the system one on 6379."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Self

from . import HarnessError
from .ports import LOOPBACK, free_port
from .process import pinned_to, wait_until


class RedisServer:
    """A ``redis-server`` of the caller's own, without persistence, controlled by PID.

    ``start`` again after ``kill`` or ``stop`` brings it back on the same port, as a
    restarted Redis would be. ``cpus`` pins it (the benchmark keeps it off the server's core).
    """

    def __init__(
        self, workdir: Path, port: int | None = None, *, cpus: Collection[int] | None = None
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.cpus = cpus
        self.process: subprocess.Popen[bytes] | None = None
        # DEBUG SLEEP is how ``pause`` makes it unresponsive; Redis 7 wants it enabled.
        self.debug_command = True

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _command_line(self) -> list[str]:
        command = ["redis-server", "--port", str(self.port), "--bind", LOOPBACK]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        if self.debug_command:
            command += ["--enable-debug-command", "local"]
        return command

    def start(self, timeout: float = 10) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / f"redis-{self.port}.log").open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    self._command_line(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=pinned_to(self.cpus) if self.cpus else None,
                )
            except FileNotFoundError:
                raise HarnessError("redis-server is not installed") from None
        ok = wait_until(self.ping, timeout)
        if not ok and self.process.poll() is not None and self.debug_command:
            # A Redis older than 7 does not know --enable-debug-command.
            self.debug_command = False
            return self.start(timeout)
        if not ok:
            self.stop()
            raise HarnessError(f"redis-server on port {self.port} did not start")
        return self

    def ping(self) -> bool:
        try:
            return self.command("PING", timeout=0.5) == b"+PONG"
        except OSError:
            return False

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """One command over RESP: a simple reply's line (``+PONG``), a bulk reply's payload."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
        )
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            head, _, rest = data.partition(b"\r\n")
            if not head.startswith(b"$") or head == b"$-1":
                return head.strip()
            size = int(head[1:])
            while len(rest) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return rest[:size]

    def commands_processed(self) -> int:
        """Commands served since it started (``INFO stats``)."""
        for line in self.command("INFO", "stats").splitlines():
            if line.startswith(b"total_commands_processed:"):
                return int(line.split(b":")[1])
        return 0

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

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
