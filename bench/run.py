"""Benchmark harness: ``python bench/run.py`` (full, ~10 min) or ``--smoke`` (seconds).

Renders the template's default variant, serves each app under test in its own
pinned uvicorn worker, drives it from ``load.py`` in a separate process pinned
to the other core, and writes ``RESULTS.md``, ``results.png`` and
``results.json``. A full run writes them into ``bench/results/``; a smoke run writes
them into a temporary directory (or ``--out``) and exits 0 only when every
figure was produced. See ``bench/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import report
from servers import (
    APPS,
    BENCH,
    CLIENT_CORE,
    HOST,
    MODELS_PATH,
    SERVER_CORE,
    STREAM_PATH,
    BenchError,
    HarnessError,
    RenderCache,
    Server,
    maybe_redis,
    pending_reason,
    source_dir,
    wait_quiet,
)

# Where a full run writes RESULTS.md, results.png and results.json (a smoke run writes
# to a temporary directory, so that it never replaces the figures of record).
RESULTS_DIR = BENCH / "results"

# Which apps each figure measures. An app whose feature is not written yet (see
# ``AppSpec.requires``) is reported as pending; adding one is one name here.
UNPACED_APPS = ["floor", "naive", "ours", "ours-bare", "fastapi-sse", "fastapi-plain"]
PACED_APPS = ["ours", "floor"]
# floor shows what a stream costs in the least any Starlette app can hold it with.
OPEN_STREAMS_APPS = ["ours", "floor"]
JSON_APPS = ["ours-nolimit", "ours", "ours-bare", "ours-redis"]
CANCEL_APP = "ours"
PROFILED = [("ours", "stream"), ("ours", "json"), ("naive", "stream")]
FIGURES = ("unpaced", "paced", "open_streams", "json", "cancel")
# Other people's processes share this machine. Before each measurement wait (up to
# QUIET_MAX_WAIT_S, and QUIET_BUDGET_S in all) until it uses under QUIET_THRESHOLD cores.
QUIET_THRESHOLD = 0.25
QUIET_MAX_WAIT_S = 30.0
QUIET_BUDGET_S = 120.0


@dataclass(frozen=True)
class Sizes:
    runs: int
    levels: tuple[int, ...]
    unpaced_runs: int
    unpaced_tokens: int
    unpaced_seconds: float
    unpaced_warmup: float
    paced_streams: int
    paced_tokens: int
    paced_delay_ms: int
    paced_batch: int
    hold_streams: int
    hold_tokens: int
    hold_delay_ms: int
    hold_batch: int
    json_clients: int
    json_runs: int
    json_requests: int
    json_warmup: int
    cancel_trials: int
    profile_seconds: float


FULL = Sizes(
    runs=3,
    levels=(1, 100, 1000),
    # Each server process's speed depends on its hash seed (PYTHONHASHSEED is random
    # per process): a few in several run 10-15% slower throughout (bench/NOTES.md).
    # Five runs keep one or two of them out of the median.
    unpaced_runs=5,
    unpaced_tokens=1000,
    unpaced_seconds=2.0,
    unpaced_warmup=1.0,
    paced_streams=1000,
    # ~10 s streams: several seconds with all 1,000 open once the last has started.
    paced_tokens=500,
    paced_delay_ms=20,
    paced_batch=100,
    hold_streams=10_000,
    # ~30 s streams: long enough that the last of 10,000 starts while the first is
    # still open, so the peak measures holding, not how fast streams start.
    hold_tokens=61,
    hold_delay_ms=500,
    hold_batch=500,
    json_clients=64,
    # Five runs, for the same reason as unpaced_runs.
    json_runs=5,
    json_requests=8_000,
    json_warmup=1_000,
    cancel_trials=50,
    profile_seconds=6.0,
)
SMOKE = Sizes(
    runs=1,
    levels=(10,),
    unpaced_runs=1,
    unpaced_tokens=50,
    unpaced_seconds=0.5,
    unpaced_warmup=0.3,
    paced_streams=10,
    paced_tokens=50,
    paced_delay_ms=20,
    paced_batch=10,
    hold_streams=100,
    hold_tokens=4,
    hold_delay_ms=500,
    hold_batch=50,
    json_clients=8,
    json_runs=1,
    json_requests=200,
    json_warmup=20,
    cancel_trials=3,
    profile_seconds=0.0,
)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, sizes: Sizes, workdir: Path, *, smoke: bool) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.smoke = smoke
        self.renders = RenderCache(workdir / "renders")
        self.redis_commands = 0
        self.results: dict[str, Any] = {
            "mode": "smoke" if smoke else "full",
            "sizes": asdict(sizes),
            "cores": {"server": SERVER_CORE, "client": CLIENT_CORE},
            "apps": {name: spec.description for name, spec in APPS.items()},
            "figures": {},
            "pending": {},
            "errors": [],
            "quiet": {"waited_s": 0.0, "checks": 0, "gave_up": 0, "threshold": QUIET_THRESHOLD},
        }

    # --- plumbing -----------------------------------------------------------

    def load(self, spec: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """One measurement in a separate, pinned load-generator process."""
        full = {"host": HOST, "core": CLIENT_CORE, "server_core": SERVER_CORE, **spec}
        done = subprocess.run(
            [sys.executable, str(BENCH / "load.py"), json.dumps(full)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise BenchError(f"load.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def quiet(self) -> None:
        """Before a measurement, give other people's processes a bounded chance to finish."""
        budget = QUIET_BUDGET_S - self.results["quiet"]["waited_s"]
        if budget <= 0 or self.smoke:
            return
        waited, load = wait_quiet(QUIET_THRESHOLD, min(QUIET_MAX_WAIT_S, budget))
        quiet = self.results["quiet"]
        quiet["waited_s"] += waited
        quiet["checks"] += 1
        if load > QUIET_THRESHOLD:
            quiet["gave_up"] += 1
        if waited > 1:
            say(f"waited {waited:.0f} s for other processes (machine load {load:.2f} cores)")

    @contextlib.contextmanager
    def serve(self, name: str, env: Mapping[str, str] | None = None) -> Iterator[Server]:
        spec = APPS[name]
        self.quiet()
        with maybe_redis(spec, self.workdir) as redis:
            server = Server(
                spec,
                self.renders,
                self.workdir,
                env=env,
                redis_url=redis.url if redis is not None else None,
            )
            try:
                server.start()
            except HarnessError:
                # The service is being edited by others while this runs; one retry
                # rides out a half-saved file.
                time.sleep(2)
                server = Server(
                    spec,
                    self.renders,
                    self.workdir,
                    env=env,
                    redis_url=redis.url if redis is not None else None,
                )
                server.start()
            try:
                yield server
            finally:
                server.stop()
                if redis is not None:
                    self.redis_commands = redis.commands_processed()

    def warm(self, server: Server) -> None:
        """A few short streams: a fresh worker answers its first requests ~100x slower."""
        self.load(
            {
                "mode": "once",
                "port": server.port,
                "path": STREAM_PATH,
                "max_tokens": 2,
                "streams": 20,
                "batch": 20,
                "timeout": 30,
            },
            timeout=60,
        )

    def figure(self, name: str) -> dict[str, Any]:
        """A figure's entry in the results (kept, not replaced: it may hold pending apps)."""
        entry: dict[str, Any] = self.results["figures"].setdefault(name, {})
        return entry

    def available(self, names: list[str], figure: str) -> list[str]:
        ready = []
        for name in names:
            reason = pending_reason(self.renders, APPS[name])
            if reason is None:
                ready.append(name)
            else:
                self.results["pending"].setdefault(name, reason)
                self.figure(figure).setdefault("pending", {})[name] = reason
                say(f"{figure}: {name} is pending ({reason})")
        return ready

    def guarded(self, figure: str, body: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            body()
        except Exception as exc:  # a failed figure is reported; the others still run
            say(f"{figure} FAILED: {exc}")
            self.results["errors"].append(
                {"figure": figure, "error": str(exc), "trace": traceback.format_exc()[-4000:]}
            )
        self.results["figures"].setdefault(figure, {})["seconds"] = time.monotonic() - started

    # --- figures ------------------------------------------------------------

    def unpaced(self) -> None:
        s = self.sizes
        apps = self.available(UNPACED_APPS, "unpaced")
        data: dict[str, dict[str, list[dict[str, Any]]]] = {a: {} for a in apps}
        self.figure("unpaced").update(apps=data, max_tokens=s.unpaced_tokens)
        # Run-major order: drift on the machine spreads over every app alike.
        for run in range(s.unpaced_runs):
            for level in s.levels:
                for name in apps:
                    with self.serve(name) as server:
                        result = self.load(
                            {
                                "mode": "window",
                                "port": server.port,
                                "path": STREAM_PATH,
                                "max_tokens": s.unpaced_tokens,
                                "concurrency": level,
                                "duration": s.unpaced_seconds,
                                # Starting 1,000 streams takes the slower apps about a
                                # second even on a quiet machine: keep it out of the window.
                                "warmup_min": max(s.unpaced_warmup, level / 500),
                                "warmup_max": 30.0,
                                "settle": 0.2,
                                "server_pid": server.pid,
                            },
                            timeout=s.unpaced_seconds + 90,
                        )
                    data[name].setdefault(str(level), []).append(result)
                    say(
                        f"unpaced run {run + 1} {name:<13} {level:>5} streams: "
                        f"{result['tokens_per_s']:>9.0f} tok/s, server "
                        f"{fmt(result['server_us_per_token'])} us/tok, "
                        f"client util {result['client_util']:.2f}"
                    )

    def paced(self) -> None:
        s = self.sizes
        apps = self.available(PACED_APPS, "paced")
        data: dict[str, list[dict[str, Any]]] = {a: [] for a in apps}
        self.figure("paced").update(
            apps=data, streams=s.paced_streams, max_tokens=s.paced_tokens, delay_ms=s.paced_delay_ms
        )
        env = {"FAKE_LLM_DELAY_MS": str(s.paced_delay_ms)}
        stream_seconds = s.paced_tokens * s.paced_delay_ms / 1000
        for run in range(s.runs):
            for name in apps:
                with self.serve(name, env) as server:
                    self.warm(server)
                    result = self.load(
                        {
                            "mode": "once",
                            "port": server.port,
                            "path": STREAM_PATH,
                            "max_tokens": s.paced_tokens,
                            "streams": s.paced_streams,
                            "batch": s.paced_batch,
                            "batch_interval": 0.1,
                            "timeout": stream_seconds * 3 + 60,
                            "server_pid": server.pid,
                        },
                        timeout=stream_seconds * 3 + 120,
                    )
                data[name].append(result)
                say(
                    f"paced run {run + 1} {name:<6}: completion {result['completion']:.3f}, "
                    f"TTFT p99 {fmt(result['ttft_ms']['p99'])} ms, "
                    f"gap p99 {fmt(result['gap_ms']['p99'])} ms, "
                    f"client util {result['client_util']:.2f}"
                )

    def open_streams(self) -> None:
        s = self.sizes
        apps = self.available(OPEN_STREAMS_APPS, "open_streams")
        figure = self.figure("open_streams")
        figure.update(
            apps={}, target=s.hold_streams, max_tokens=s.hold_tokens, delay_ms=s.hold_delay_ms
        )
        # The peak of live streams is the number held: no second search is needed.
        for name in apps:
            runs: list[dict[str, Any]] = []
            figure["apps"][name] = {str(s.hold_streams): runs}
            for run in range(s.runs):
                result = self._hold(name, s.hold_streams)
                runs.append(result)
                say(
                    f"open streams run {run + 1} {name} {s.hold_streams}: "
                    f"completion {result['completion']:.4f}, peak live "
                    f"{result['peak_live']}, RSS/stream "
                    f"{fmt(result['rss_per_stream_kib'])} KiB, TTFT p99 "
                    f"{fmt(result['ttft_ms']['p99'])} ms"
                )

    def _hold(self, name: str, level: int) -> dict[str, Any]:
        s = self.sizes
        env = {"FAKE_LLM_DELAY_MS": str(s.hold_delay_ms)}
        stream_seconds = (s.hold_tokens - 1) * s.hold_delay_ms / 1000
        with self.serve(name, env) as server:
            # Warm first, so the idle RSS already holds every lazily built structure
            # and what remains is the cost of the open streams themselves.
            self.warm(server)
            result = self.load(
                {
                    "mode": "once",
                    "port": server.port,
                    "path": STREAM_PATH,
                    "max_tokens": s.hold_tokens,
                    "streams": level,
                    "batch": s.hold_batch,
                    "batch_interval": 0.05,
                    "timeout": stream_seconds * 3 + 60,
                    "server_pid": server.pid,
                    "sample_interval": 0.1,
                },
                timeout=stream_seconds * 3 + 120,
            )
        live = result["peak_live_sampled"]
        grown = result["rss_at_peak_live"] - result["rss_idle"]
        result["rss_per_stream_kib"] = grown / live / 1024 if live else None
        return result

    def json_rps(self) -> None:
        s = self.sizes
        apps = self.available(JSON_APPS, "json")
        data: dict[str, list[dict[str, Any]]] = {a: [] for a in apps}
        self.figure("json").update(
            apps=data, clients=s.json_clients, requests=s.json_requests, path=MODELS_PATH
        )
        for run in range(s.json_runs):
            for name in apps:
                with self.serve(name) as server:
                    result = self.load(
                        {
                            "mode": "json",
                            "port": server.port,
                            "path": MODELS_PATH,
                            "concurrency": s.json_clients,
                            "requests": s.json_requests,
                            "warmup": s.json_warmup,
                            "server_pid": server.pid,
                        },
                        timeout=300,
                    )
                if APPS[name].needs_redis:
                    # A limiter whose circuit opened answers from its local fallback:
                    # Redis must have seen at least one command per request.
                    result["redis_commands"] = self.redis_commands
                    result["redis_requests"] = s.json_requests + s.json_warmup
                data[name].append(result)
                say(
                    f"json run {run + 1} {name:<12}: {result['requests_per_s']:.0f} req/s "
                    f"(ok {result['ok']}/{result['requests']}), p99 "
                    f"{fmt(result['latency_ms']['p99'])} ms"
                )

    def cancel(self) -> None:
        s = self.sizes
        apps = self.available([CANCEL_APP], "cancel")
        scenarios: dict[str, Any] = {}
        self.figure("cancel").update(app=CANCEL_APP, scenarios=scenarios)
        if not apps:
            return
        cases = [
            (
                "waiting for the first token",
                {"FAKE_LLM_FIRST_TOKEN_DELAY_MS": "20000"},
                {"max_tokens": 16, "after_tokens": 0},
            ),
            (
                "mid-stream (20 ms pacing)",
                {"FAKE_LLM_DELAY_MS": "20"},
                {"max_tokens": 10_000, "after_tokens": 3},
            ),
        ]
        for label, env, params in cases:
            with self.serve(CANCEL_APP, env) as server:
                result = self.load(
                    {
                        "mode": "cancel",
                        "port": server.port,
                        "path": STREAM_PATH,
                        "trials": s.cancel_trials,
                        "warmup_trials": 2,
                        "poll_interval": 0.001,
                        **params,
                    },
                    timeout=60 + s.cancel_trials * 12,
                )
            scenarios[label] = result
            say(
                f"cancel {label}: p50 {fmt(result['latency_ms']['p50'])} ms, "
                f"max {fmt(result['latency_ms']['max'])} ms, "
                f"{result['measured']}/{result['trials']} measured"
            )

    def profile(self) -> None:
        """Sample the server with py-spy under load; Findings summarises the stacks."""
        s = self.sizes
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            self.results["profiles"] = {"error": "py-spy is not installed"}
            return
        profiles: dict[str, Any] = {}
        self.results["profiles"] = profiles
        for name, workload in PROFILED:
            if pending_reason(self.renders, APPS[name]) is not None:
                continue
            raw_path = self.workdir / f"profile-{name}-{workload}.txt"
            with self.serve(name) as server:
                if workload == "stream":
                    spec: dict[str, Any] = {
                        "mode": "window",
                        "path": STREAM_PATH,
                        "max_tokens": s.unpaced_tokens,
                        "concurrency": 100,
                        "duration": s.profile_seconds + 2,
                        "warmup_min": 1.0,
                    }
                else:
                    spec = {
                        "mode": "json",
                        "path": MODELS_PATH,
                        "concurrency": s.json_clients,
                        "requests": s.json_requests,
                        "warmup": s.json_warmup,
                    }
                spec.update(port=server.port, server_pid=server.pid)
                full = {"host": HOST, "core": CLIENT_CORE, "server_core": SERVER_CORE, **spec}
                loader = subprocess.Popen(
                    [sys.executable, str(BENCH / "load.py"), json.dumps(full)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    time.sleep(1.5)
                    sampled = subprocess.run(
                        [
                            py_spy,
                            "record",
                            "--pid",
                            str(server.pid),
                            "--duration",
                            str(int(s.profile_seconds)),
                            "--rate",
                            "200",
                            "--nonblocking",
                            "--function",
                            "--format",
                            "raw",
                            "--output",
                            str(raw_path),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=s.profile_seconds + 60,
                    )
                finally:
                    try:
                        loader.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        loader.kill()
                        loader.wait()
            key = f"{name} {workload}"
            if sampled.returncode != 0 or not raw_path.exists():
                profiles[key] = {"error": (sampled.stderr or sampled.stdout)[-1000:]}
            else:
                profiles[key] = report.summarise_profile(raw_path.read_text())
            say(f"profiled {key}")

    def timer_jitter(self) -> None:
        """How late a 20 ms asyncio.sleep wakes on an idle pinned uvloop: the floor under
        every paced gap figure on this machine."""
        iterations = 50 if self.smoke else 250
        code = (
            "import asyncio, json, os, time, uvloop\n"
            f"os.sched_setaffinity(0, {{{SERVER_CORE}}})\n"
            "async def main():\n"
            "    gaps, last = [], time.perf_counter()\n"
            f"    for _ in range({iterations}):\n"
            "        await asyncio.sleep(0.02)\n"
            "        now = time.perf_counter(); gaps.append((now - last) * 1000); last = now\n"
            "    gaps.sort()\n"
            "    print(json.dumps({'p50': gaps[len(gaps) // 2], "
            "'p99': gaps[int(len(gaps) * 0.99)], 'max': gaps[-1]}))\n"
            "uvloop.run(main())\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        if done.returncode == 0:
            self.results["timer_jitter_ms"] = json.loads(done.stdout)

    def run(self, figures: tuple[str, ...], profile: bool) -> None:
        steps: dict[str, Callable[[], None]] = {
            "unpaced": self.unpaced,
            "paced": self.paced,
            "open_streams": self.open_streams,
            "json": self.json_rps,
            "cancel": self.cancel,
        }
        try:
            source_dir(self.renders, APPS["ours"])
        except HarnessError as exc:
            self.results["errors"].append({"figure": "render", "error": str(exc)})
            say(f"render FAILED: {exc}")
        self.guarded("timer", self.timer_jitter)
        for figure in figures:
            say(f"--- {figure}")
            self.guarded(figure, steps[figure])
        if profile:
            say("--- profile")
            self.guarded("profile", self.profile)

    def missing(self, figures: tuple[str, ...]) -> list[str]:
        """Figures lacking a measurement for any app that is not pending."""
        return [f for f in figures if not report.figure_complete(self.results, f)]


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _stop(signum: int, _frame: object) -> None:
    # Unwinding (not dying) runs every `finally`: the servers and load generators
    # this run started are stopped by their PIDs, and partial results are written.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, temp output, seconds")
    parser.add_argument(
        "--out", type=Path, help="output directory (default: bench/results/, smoke: temp)"
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; smoke 1)")
    parser.add_argument(
        "--only", help=f"comma-separated subset of figures: {','.join(FIGURES)}", default=""
    )
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy profiling")
    parser.add_argument("--keep-workdir", action="store_true", help="keep renders and logs")
    args = parser.parse_args(argv)

    sizes = SMOKE if args.smoke else FULL
    if args.runs:
        sizes = replace(sizes, runs=args.runs, unpaced_runs=args.runs, json_runs=args.runs)
    figures = tuple(f for f in args.only.split(",") if f) or FIGURES
    unknown = set(figures) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if args.out is not None:
        out = args.out
    elif args.smoke:
        out = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    else:
        out = RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-work-"))
    # A background job inherits SIGINT ignored; take both signals over explicitly.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    say(f"mode {'smoke' if args.smoke else 'full'}, output {out}, work {workdir}")

    started = time.monotonic()
    bench = Bench(sizes, workdir, smoke=args.smoke)
    try:
        bench.run(figures, profile=not args.smoke and not args.no_profile)
    finally:
        bench.results["seconds"] = time.monotonic() - started
        bench.results["machine"] = report.machine()
        (out / "results.json").write_text(json.dumps(bench.results, indent=1) + "\n")
        report.write(bench.results, out)
        if args.keep_workdir:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    missing = bench.missing(figures)
    say(f"wrote {out / 'RESULTS.md'} and {out / 'results.png'} in {bench.results['seconds']:.0f} s")
    if missing:
        say(f"figures not produced: {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
