"""Load generator: its own process, pinned to its own core, raw HTTP/1.1 over asyncio.

``python bench/load.py '<json spec>'`` runs one measurement and prints one JSON
object on stdout. It speaks HTTP/1.1 through ``asyncio.Protocol`` on uvloop
rather than through a client library: an SSE body is never decoded, tokens are
counted as ``event: token`` occurrences in the raw bytes (one ``bytes.count``
per socket read), so the client costs far less CPU per token than the servers
it measures, and it reports its own CPU time so a client-bound figure shows.

The server's CPU time (utime + stime from ``/proc/<pid>/stat``) and RSS are
read here, at the exact edges of the measurement window.

Modes (``spec["mode"]``):

``window``  C keep-alive connections each request streams back to back; tokens
            are counted during a fixed window that opens once every connection
            has received a token (unpaced throughput).
``once``    C connections opened in batches, one stream each, every token's
            arrival time kept (paced streams, open-stream capacity, RSS).
``json``    C keep-alive connections share a fixed number of GET requests.
``cancel``  open a stream, close it, poll ``/metrics`` every millisecond until
            the ``active_streams`` gauge is back to 0.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

TOKEN = b"event: token"
DONE = b"event: done"
# The last chunk of a chunked body; a frame never holds a line that is just "0".
END = b"\r\n0\r\n\r\n"
OVERLAP = len(TOKEN) - 1
GAUGE = re.compile(rb'^active_streams\{transport="sse"\} ([0-9.eE+-]+)$', re.MULTILINE)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# uvloop's loop.time() is libuv's cached millisecond clock: too coarse for gaps.
clock = time.perf_counter
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Spec = dict[str, Any]


# --- process helpers -----------------------------------------------------------


def pin_to(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity") and core in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {core})


def raise_nofile() -> None:
    """Soft limit up to the hard one: thousands of sockets need thousands of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name may hold spaces; the fields we need follow its closing paren.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def core_busy_seconds(cores: tuple[int, ...]) -> dict[int, float]:
    """Non-idle time of each listed core since boot, from /proc/stat."""
    busy: dict[int, float] = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or not line[3].isdigit():
                continue
            name, *values = line.split()
            core = int(name[3:])
            if core in cores:
                ticks = [int(v) for v in values]
                # idle and iowait are the only fields that are not work.
                busy[core] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS
    return busy


def proc_fds(pid: int) -> int:
    """Open descriptors of ``pid``: its listening socket, files and one per connection."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quantiles(values: list[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds (inputs are seconds)."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(ordered) * 1000,
    }


# --- HTTP/1.1 over a protocol --------------------------------------------------


class Counters:
    """Shared by every connection of one measurement."""

    __slots__ = ("counting", "gap_ends", "gaps", "live", "peak_live", "primed", "window_tokens")

    def __init__(self) -> None:
        self.counting = False
        self.window_tokens = 0
        self.primed = 0
        # Streams that have had their first token and not ended: what the server holds.
        self.live = 0
        self.peak_live = 0
        self.gaps: list[float] = []
        # When each gap ended, to tell the gaps of the ramp from those of the steady state.
        self.gap_ends: list[float] = []


class Exchange:
    """One request and what came back."""

    __slots__ = (
        "body",
        "complete",
        "done",
        "first_at",
        "future",
        "headers_at",
        "keep_body",
        "last_at",
        "sent_at",
        "status",
        "timed",
        "tokens",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, *, timed: bool, keep_body: bool) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self.timed = timed
        self.keep_body = keep_body
        self.body = bytearray()
        self.sent_at = 0.0
        self.headers_at = 0.0
        self.first_at = 0.0
        self.last_at = 0.0
        self.status = 0
        self.tokens = 0
        self.done = False
        self.complete = False

    def finish(self, complete: bool) -> None:
        self.complete = complete
        if not self.future.done():
            self.future.set_result(None)


class Conn(asyncio.Protocol):
    """A keep-alive connection carrying one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, counters: Counters) -> None:
        self.loop = loop
        self.counters = counters
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.primed = False
        self.ex: Exchange | None = None
        self._head = b""
        self._in_body = False
        self._chunked = False
        self._remaining = -1
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        ex, self.ex = self.ex, None
        if ex is not None:
            # A body without framing ends with the connection; anything else was cut.
            ex.finish(self._in_body and not self._chunked and self._remaining < 0)

    def send(self, raw: bytes, ex: Exchange) -> None:
        assert self.transport is not None
        self.ex = ex
        self._head = b""
        self._in_body = False
        self._tail = b""
        ex.sent_at = clock()
        if self.lost:
            ex.finish(False)
            return
        self.transport.write(raw)

    def close(self, abort: bool = False) -> None:
        if self.transport is not None and not self.lost:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:
            return
        if not self._in_body:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                return
            self._start_body(ex, head[: end + 2])
            data = head[end + 4 :]
            if not self._chunked and self._remaining == 0:
                self._complete(ex)
                return
            if not data:
                return
        if self._chunked:
            self._chunk_data(ex, data)
        else:
            if ex.keep_body:
                ex.body += data
            if self._remaining >= 0:
                self._remaining -= len(data)
                if self._remaining <= 0:
                    self._complete(ex)

    def _start_body(self, ex: Exchange, head: bytes) -> None:
        ex.headers_at = clock()
        ex.status = int(head[9:12])
        lowered = head.lower()
        self._in_body = True
        self._chunked = b"\r\ntransfer-encoding: chunked\r\n" in lowered
        length = CONTENT_LENGTH.search(head)
        self._remaining = int(length.group(1)) if length and not self._chunked else -1
        # So that an empty chunked body ("0\r\n\r\n" straight after the headers) matches END.
        self._tail = b"\r\n"

    def _chunk_data(self, ex: Exchange, data: bytes) -> None:
        tail = self._tail
        crossing = tail + data[:OVERLAP]
        count = data.count(TOKEN) + crossing.count(TOKEN)
        if not ex.done and (DONE in data or DONE in crossing):
            ex.done = True
        if count:
            self._on_tokens(ex, count)
        if ex.keep_body:
            ex.body += data
        ended = data.endswith(END) if len(data) >= len(END) else (tail + data).endswith(END)
        self._tail = data[-OVERLAP:] if len(data) >= OVERLAP else (tail + data)[-OVERLAP:]
        if ended:
            self._complete(ex)

    def _on_tokens(self, ex: Exchange, count: int) -> None:
        counters = self.counters
        ex.tokens += count
        if counters.counting:
            counters.window_tokens += count
        if not self.primed:
            self.primed = True
            counters.primed += 1
        if ex.timed:
            now = clock()
            if ex.first_at == 0.0:
                ex.first_at = now
                counters.live += 1
                if counters.live > counters.peak_live:
                    counters.peak_live = counters.live
            else:
                counters.gaps.append(now - ex.last_at)
                counters.gap_ends.append(now)
            # Tokens that arrived in the same read as the first had no gap of their own.
            if count > 1:
                counters.gaps.extend([0.0] * (count - 1))
                counters.gap_ends.extend([now] * (count - 1))
            ex.last_at = now

    def _complete(self, ex: Exchange) -> None:
        self.ex = None
        self._in_body = False
        ex.finish(True)


def stream_request(host: str, port: int, path: str, max_tokens: int) -> bytes:
    body = json.dumps(
        {"messages": [{"role": "user", "content": "bench"}], "max_tokens": max_tokens},
        separators=(",", ":"),
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nOrigin: https://example.com\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get_request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
        f"Origin: https://example.com\r\n\r\n"
    ).encode()


async def connect(host: str, port: int, counters: Counters) -> Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Conn(loop, counters), host, port)
    return conn


async def connect_many(
    host: str, port: int, counters: Counters, count: int, batch: int
) -> tuple[list[Conn], int]:
    """``count`` connections in batches (the listen backlog is finite); returns failures too."""
    conns: list[Conn] = []
    failed = 0
    for start in range(0, count, batch):
        size = min(batch, count - start)
        results = await asyncio.gather(
            *(connect(host, port, counters) for _ in range(size)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Conn):
                conns.append(result)
            else:
                failed += 1
    return conns, failed


class Window:
    """Server and client CPU across a measurement window, and everyone else's.

    The machine is shared: whatever else ran on the two cores during the window
    (busy time of the core minus the pinned process's own) is reported as
    ``foreign_*`` so that a contended run can be told apart from a slow one.
    """

    def __init__(self, pid: int | None, server_core: int | None, client_core: int | None) -> None:
        self.pid = pid
        self.cores = tuple(c for c in {server_core, client_core} if c is not None)
        self.server_core = server_core
        self.client_core = client_core
        self.t0 = self.t1 = 0.0
        self.server0 = self.server1 = 0.0
        self.client0 = self.client1 = 0.0
        self.busy0: dict[int, float] = {}
        self.busy1: dict[int, float] = {}

    def open(self) -> None:
        self.busy0 = core_busy_seconds(self.cores)
        self.server0 = proc_cpu_seconds(self.pid) if self.pid else 0.0
        self.client0 = own_cpu_seconds()
        self.t0 = time.monotonic()

    def close(self) -> None:
        self.t1 = time.monotonic()
        self.client1 = own_cpu_seconds()
        self.server1 = proc_cpu_seconds(self.pid) if self.pid else 0.0
        self.busy1 = core_busy_seconds(self.cores)

    def report(self) -> dict[str, Any]:
        seconds = self.t1 - self.t0
        server = self.server1 - self.server0
        client = self.client1 - self.client0
        busy = {c: self.busy1.get(c, 0.0) - self.busy0.get(c, 0.0) for c in self.cores}
        foreign_server = foreign_client = 0.0
        if self.server_core is not None and self.server_core == self.client_core:
            foreign_server = max(0.0, busy[self.server_core] - server - client)
        else:
            if self.server_core is not None and self.pid:
                foreign_server = max(0.0, busy[self.server_core] - server)
            if self.client_core is not None:
                foreign_client = max(0.0, busy[self.client_core] - client)
        return {
            "seconds": seconds,
            "server_cpu_s": server,
            "client_cpu_s": client,
            "server_util": server / seconds if seconds else 0.0,
            "client_util": client / seconds if seconds else 0.0,
            # Cores' worth of other processes on the server's and the client's core.
            "foreign_server_core": foreign_server / seconds if seconds else 0.0,
            "foreign_client_core": foreign_client / seconds if seconds else 0.0,
        }


def window_for(spec: Spec) -> Window:
    return Window(spec.get("server_pid"), spec.get("server_core"), spec.get("core"))


# --- modes -----------------------------------------------------------------------


async def run_window(spec: Spec) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    concurrency: int = spec["concurrency"]
    max_tokens: int = spec["max_tokens"]
    raw = stream_request(host, port, spec["path"], max_tokens)
    counters = Counters()
    loop = asyncio.get_running_loop()
    conns, connect_failed = await connect_many(
        host, port, counters, concurrency, spec.get("batch", 500)
    )
    stop = False
    streams = {"completed": 0, "failed": 0}

    async def worker(conn: Conn) -> None:
        while not stop and not conn.lost:
            ex = Exchange(loop, timed=False, keep_body=False)
            conn.send(raw, ex)
            await ex.future
            if stop:
                return
            if ex.complete and ex.status == 200 and ex.done and ex.tokens == max_tokens:
                streams["completed"] += 1
            else:
                streams["failed"] += 1
                return

    tasks = [loop.create_task(worker(conn)) for conn in conns]
    # The window opens once every connection has had a token, or once tokens flow
    # and warmup_min has passed: unpaced streams of floor and ours run one after
    # another, so 1,000 of them are never all primed, while an app that schedules
    # every request layer by layer (BaseHTTPMiddleware) sends its first token late.
    started = clock()
    started_wall = time.monotonic()
    warmup_min: float = spec.get("warmup_min", 1.0)
    warmup_max: float = spec.get("warmup_max", 15.0)
    while counters.primed < len(conns):
        elapsed = clock() - started
        if elapsed >= warmup_max or (elapsed >= warmup_min and counters.primed):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(spec.get("settle", 0.5))
    window = window_for(spec)
    before = dict(streams)
    window.open()
    counters.counting = True
    await asyncio.sleep(spec["duration"])
    counters.counting = False
    window.close()
    stop = True
    for conn in conns:
        conn.close(abort=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = window.report()
    tokens = counters.window_tokens
    result.update(
        concurrency=concurrency,
        connected=len(conns),
        primed=counters.primed,
        warmup_s=window.t0 - started_wall,
        connect_failed=connect_failed,
        tokens=tokens,
        tokens_per_s=tokens / result["seconds"] if result["seconds"] else 0.0,
        server_us_per_token=result["server_cpu_s"] * 1e6 / tokens if tokens else None,
        client_us_per_token=result["client_cpu_s"] * 1e6 / tokens if tokens else None,
        streams_completed=streams["completed"] - before["completed"],
        streams_failed=streams["failed"],
    )
    return result


async def run_once(spec: Spec) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    streams: int = spec["streams"]
    batch: int = spec.get("batch", 100)
    interval: float = spec.get("batch_interval", 0.1)
    pid: int | None = spec.get("server_pid")
    raw = stream_request(host, port, spec["path"], spec["max_tokens"])
    counters = Counters()
    loop = asyncio.get_running_loop()
    exchanges: list[Exchange] = []
    conns: list[Conn] = []
    state = {"open": 0, "peak": 0, "connect_failed": 0}
    samples: list[tuple[float, int, int, int]] = []
    rss_idle = proc_rss_bytes(pid) if pid else 0
    fds_idle = proc_fds(pid) if pid else 0

    def closed(ex: Exchange, _: asyncio.Future[None]) -> None:
        state["open"] -= 1
        if ex.first_at:
            counters.live -= 1

    async def open_one() -> None:
        try:
            conn = await connect(host, port, counters)
        except OSError:
            state["connect_failed"] += 1
            return
        ex = Exchange(loop, timed=True, keep_body=False)
        ex.future.add_done_callback(functools.partial(closed, ex))
        conns.append(conn)
        exchanges.append(ex)
        state["open"] += 1
        state["peak"] = max(state["peak"], state["open"])
        conn.send(raw, ex)

    async def sample() -> None:
        while pid:
            samples.append((clock(), counters.live, proc_rss_bytes(pid), proc_fds(pid)))
            await asyncio.sleep(spec.get("sample_interval", 0.1))

    window = window_for(spec)
    window.open()
    sampler = loop.create_task(sample())
    for start in range(0, streams, batch):
        await asyncio.gather(*(open_one() for _ in range(min(batch, streams - start))))
        if start + batch < streams:
            await asyncio.sleep(interval)
    ramp_seconds = window_elapsed(window)
    if exchanges:
        await asyncio.wait([ex.future for ex in exchanges], timeout=spec["timeout"])
    window.close()
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    for conn in conns:
        conn.close(abort=True)

    # Complete means every token: an error event followed by "done" is not.
    want = spec["max_tokens"]
    completed = sum(
        1 for ex in exchanges if ex.complete and ex.status == 200 and ex.done and ex.tokens == want
    )
    statuses: dict[str, int] = {}
    for ex in exchanges:
        statuses[str(ex.status)] = statuses.get(str(ex.status), 0) + 1
    tokens = sum(ex.tokens for ex in exchanges)
    # RSS per stream is read at the sample that saw the most live streams.
    best = max(samples, key=lambda s: (s[1], s[2]), default=(0.0, 0, 0, 0))
    connections = max(0, best[3] - fds_idle)
    result = window.report()
    result.update(
        streams=streams,
        completed=completed,
        completion=completed / streams if streams else 0.0,
        connect_failed=state["connect_failed"],
        statuses=statuses,
        tokens=tokens,
        expected_tokens=streams * spec["max_tokens"],
        ramp_seconds=ramp_seconds,
        peak_open=state["peak"],
        peak_live=counters.peak_live,
        peak_live_sampled=best[1],
        rss_idle=rss_idle,
        rss_at_peak_live=best[2],
        # Accepted connections whose stream has not started yet hold memory too.
        connections_at_peak_live=connections,
        peak_connections=max((s[3] for s in samples), default=fds_idle) - fds_idle,
        rss_per_connection_kib=(best[2] - rss_idle) / connections / 1024 if connections else None,
        rss_max=max((s[2] for s in samples), default=0),
        server_us_per_token=result["server_cpu_s"] * 1e6 / tokens if tokens else None,
        ttft_ms=quantiles([ex.first_at - ex.sent_at for ex in exchanges if ex.first_at]),
        gap_ms=quantiles(counters.gaps),
        **steady_gaps(exchanges, counters),
    )
    return result


def steady_gaps(exchanges: list[Exchange], counters: Counters) -> dict[str, Any]:
    """Gaps that ended while every stream was open: after the last first token, before the
    first stream ended. The ramp's gaps, when starts compete with running streams, are left
    out; ``gap_ms`` has every gap."""
    firsts = [ex.first_at for ex in exchanges if ex.first_at]
    ends = [ex.last_at for ex in exchanges if ex.complete and ex.last_at]
    if not firsts or len(firsts) < len(exchanges) or not ends:
        return {"steady_seconds": 0.0, "steady_gap_ms": quantiles([])}
    start, end = max(firsts), min(ends)
    gaps = [g for g, at in zip(counters.gaps, counters.gap_ends, strict=True) if start < at <= end]
    return {"steady_seconds": max(0.0, end - start), "steady_gap_ms": quantiles(gaps)}


def window_elapsed(window: Window) -> float:
    return time.monotonic() - window.t0


async def run_json(spec: Spec) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    concurrency: int = spec["concurrency"]
    raw = get_request(host, port, spec["path"])
    counters = Counters()
    loop = asyncio.get_running_loop()
    conns, connect_failed = await connect_many(host, port, counters, concurrency, 500)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    budget = {"left": 0}

    async def worker(conn: Conn, record: bool) -> None:
        while budget["left"] > 0 and not conn.lost:
            budget["left"] -= 1
            ex = Exchange(loop, timed=False, keep_body=False)
            conn.send(raw, ex)
            await ex.future
            if record:
                latencies.append(clock() - ex.sent_at)
                key = str(ex.status) if ex.complete else "incomplete"
                statuses[key] = statuses.get(key, 0) + 1

    budget["left"] = spec.get("warmup", 0)
    await asyncio.gather(*(worker(conn, False) for conn in conns))
    budget["left"] = spec["requests"]
    window = window_for(spec)
    window.open()
    await asyncio.gather(*(worker(conn, True) for conn in conns))
    window.close()
    for conn in conns:
        conn.close()
    result = window.report()
    done = len(latencies)
    ok = statuses.get("200", 0)
    result.update(
        concurrency=concurrency,
        connect_failed=connect_failed,
        requests=done,
        ok=ok,
        statuses=statuses,
        requests_per_s=ok / result["seconds"] if result["seconds"] else 0.0,
        server_us_per_request=result["server_cpu_s"] * 1e6 / done if done else None,
        latency_ms=quantiles(latencies),
    )
    return result


async def run_cancel(spec: Spec) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    loop = asyncio.get_running_loop()
    counters = Counters()
    metrics = await connect(host, port, counters)
    metrics_raw = get_request(host, port, spec.get("metrics_path", "/metrics"))
    stream_raw = stream_request(host, port, spec["path"], spec["max_tokens"])
    poll_interval: float = spec.get("poll_interval", 0.001)
    limit: float = spec.get("trial_timeout", 5.0)
    poll_times: list[float] = []
    latencies: list[float] = []
    failures: list[str] = []

    async def gauge() -> float:
        nonlocal metrics
        if metrics.lost:
            metrics = await connect(host, port, counters)
        ex = Exchange(loop, timed=False, keep_body=True)
        metrics.send(metrics_raw, ex)
        await ex.future
        poll_times.append(clock() - ex.sent_at)
        match = GAUGE.search(bytes(ex.body))
        return float(match.group(1)) if match else 0.0

    async def until(check: Callable[[], Coroutine[Any, Any, bool]]) -> bool:
        deadline = clock() + limit
        while clock() < deadline:
            if await check():
                return True
            await asyncio.sleep(poll_interval)
        return False

    async def idle() -> bool:
        return await gauge() == 0

    async def running() -> bool:
        return await gauge() >= 1

    warmups: int = spec.get("warmup_trials", 0)
    for trial in range(-warmups, spec["trials"]):
        if not await until(idle):
            failures.append(f"trial {trial}: streams still active before the trial")
            continue
        conn = await connect(host, port, counters)
        ex = Exchange(loop, timed=False, keep_body=False)
        conn.send(stream_raw, ex)
        after_tokens: int = spec.get("after_tokens", 0)

        async def started(ex: Exchange = ex, after: int = after_tokens) -> bool:
            return ex.headers_at > 0 and ex.tokens >= after and await running()

        if not await until(started):
            failures.append(f"trial {trial}: the stream did not start (status {ex.status})")
            conn.close(abort=True)
            continue
        closed_at = clock()
        conn.close()
        if await until(idle):
            if trial >= 0:  # warm-up trials run on a cold worker and are not kept
                latencies.append(clock() - closed_at)
        else:
            failures.append(f"trial {trial}: generation still running {limit:.0f} s after close")
    metrics.close()
    return {
        "trials": spec["trials"],
        "measured": len(latencies),
        "failures": failures,
        "latency_ms": quantiles(latencies),
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
        "poll_round_trip_ms": quantiles(poll_times),
    }


MODES = {"window": run_window, "once": run_once, "json": run_json, "cancel": run_cancel}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: load.py '<json spec>'", file=sys.stderr)
        return 2
    spec: Spec = json.loads(argv[1])
    pin_to(spec.get("core"))
    raise_nofile()
    try:
        import uvloop
    except ImportError:  # still correct without it, only slower
        runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    else:
        runner = uvloop.run
    result = runner(MODES[spec["mode"]](spec))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
