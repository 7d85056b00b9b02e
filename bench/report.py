"""RESULTS.md and results.png from a results dict (``run.py`` builds it).

``python bench/report.py bench/results/results.json [out_dir]`` rebuilds both from
saved raw data, next to it unless ``out_dir`` is given, without measuring again.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PACKAGES = (
    "uvicorn",
    "starlette",
    "fastapi",
    "uvloop",
    "httptools",
    "pydantic",
    "sse-starlette",
    "slowapi",
    "aiohttp",
)
TARGET_RSS_KIB = 30.0
TARGET_GAP_MS = 30.0
TARGET_CANCEL_MS = 100.0
TARGET_FLOOR_RATIO = 0.90
TARGET_NAIVE_RATIO = 10.0
TARGET_REDIS_RATIO = 0.8
# ours vs ours-bare (the same app with its middleware stack removed), side by side.
TARGET_BARE_RATIO = 0.90
TARGET_BARE_JSON_RATIO = 0.70
FASTAPI_SSE_BUDGET = 0.90

Results = dict[str, Any]


# --- machine ---------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    memory = _read("/proc/meminfo").splitlines()[0:1]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": memory[0].split(":", 1)[1].strip() if memory else "?",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "versions": versions,
        "commit": _commit(),
    }


# --- statistics ------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    def show(self, digits: int = 0, unit: str = "") -> str:
        f = f"{{:,.{digits}f}}"
        if self.n == 1 or self.low == self.high:
            return f.format(self.median) + unit
        return f"{f.format(self.median)}{unit} ({f.format(self.low)}-{f.format(self.high)})"


def spread(values: Iterable[float | None]) -> Spread | None:
    clean = [v for v in values if v is not None]
    if not clean:
        return None
    return Spread(statistics.median(clean), min(clean), max(clean), len(clean))


def pick(runs: list[dict[str, Any]], *path: str) -> list[float | None]:
    out: list[float | None] = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        out.append(value if isinstance(value, int | float) else None)
    return out


def show(s: Spread | None, digits: int = 0, unit: str = "") -> str:
    return "—" if s is None else s.show(digits, unit)


def ratio(a: Spread | None, b: Spread | None) -> float | None:
    if a is None or b is None or not b.median:
        return None
    return a.median / b.median


def figure_complete(results: Results, figure: str) -> bool:
    """True when every app of the figure that is not pending has a measurement."""
    data = results.get("figures", {}).get(figure)
    if not data:
        return False
    if figure == "cancel":
        scenarios = data.get("scenarios", {})
        return bool(scenarios) and all(s.get("measured") for s in scenarios.values())
    apps = data.get("apps", {})
    if not apps:
        return False
    for runs in apps.values():
        if figure in ("unpaced", "open_streams"):
            if not runs or not all(runs.values()):
                return False
            if figure == "unpaced" and len(runs) != len(results["sizes"]["levels"]):
                return False
        elif not runs:
            return False
    return True


# --- targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    verdict: str  # PASS, MISS, PENDING or "—" when not measured
    note: str = ""


def at_most(
    name: str, ours: Spread | None, floor: Spread | None, limit: float, unit: str
) -> Target:
    """A target that ours' median must not exceed, with floor's figure beside it."""
    return Target(
        name,
        show(ours, 1, unit),
        verdict(None if ours is None else ours.median <= limit),
        "" if floor is None else f"floor: {show(floor, 1, unit)}",
    )


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "MISS")


def unpaced_spreads(results: Results) -> dict[str, dict[int, Spread | None]]:
    data = results.get("figures", {}).get("unpaced", {}).get("apps", {})
    return {
        app: {int(level): spread(pick(runs, "tokens_per_s")) for level, runs in levels.items()}
        for app, levels in data.items()
    }


def unpaced_cpu(results: Results) -> dict[str, dict[int, Spread | None]]:
    data = results.get("figures", {}).get("unpaced", {}).get("apps", {})
    return {
        app: {
            int(level): spread(pick(runs, "server_us_per_token")) for level, runs in levels.items()
        }
        for app, levels in data.items()
    }


def targets(results: Results) -> list[Target]:
    rows: list[Target] = []
    tps = unpaced_spreads(results)
    cpu = unpaced_cpu(results)
    levels = results["sizes"]["levels"]
    for level in levels:
        ours = tps.get("ours", {}).get(level)
        for other, goal, why in (
            ("floor", TARGET_FLOOR_RATIO, ""),
            ("naive", TARGET_NAIVE_RATIO, ""),
            ("ours-bare", TARGET_BARE_RATIO, " (middleware cost)"),
        ):
            r = ratio(ours, tps.get(other, {}).get(level))
            # CPU per token is what contention from other processes distorts least.
            by_cpu = ratio(cpu.get(other, {}).get(level), cpu.get("ours", {}).get(level))
            rows.append(
                Target(
                    f"unpaced, {level} stream{'s' if level > 1 else ''}: "
                    f"ours ≥ {goal:g}x {other}{why}",
                    "—" if r is None else f"{r:.2f}x",
                    verdict(None if r is None else r >= goal),
                    "" if by_cpu is None else f"by server CPU per token: {by_cpu:.2f}x",
                )
            )

    paced = results.get("figures", {}).get("paced", {})
    ours_paced = paced.get("apps", {}).get("ours", [])
    n = paced.get("streams", "?")
    if ours_paced:
        completions = [r["completion"] for r in ours_paced]
        rows.append(
            Target(
                f"paced 50 tok/s x {n:,} streams: 100% completion (every run)",
                ", ".join(f"{c:.2%}" for c in completions),
                verdict(all(c == 1.0 for c in completions)),
            )
        )
        floor_paced = paced.get("apps", {}).get("floor", [])
        for label, key in (
            ("whole run, ramp included", "gap_ms"),
            (f"steady state, while all {n:,} are open", "steady_gap_ms"),
        ):
            rows.append(
                at_most(
                    f"paced {n:,} streams: inter-token gap p99 ≤ {TARGET_GAP_MS:g} ms ({label})",
                    spread(pick(ours_paced, key, "p99")),
                    spread(pick(floor_paced, key, "p99")),
                    TARGET_GAP_MS,
                    " ms",
                )
            )
    else:
        rows.append(Target("paced streams", "—", "—", "not measured"))

    hold = results.get("figures", {}).get("open_streams", {})
    goal = hold.get("target")
    held = hold.get("apps", {}).get("ours", {})
    runs = held.get(str(goal), []) if goal else []
    if runs:
        ok = all(r["completion"] == 1.0 and r["peak_live"] >= goal for r in runs)
        peak = spread(pick(runs, "peak_live"))
        rows.append(
            Target(
                f"{goal:,} open streams (2 tok/s) in one worker: 100% completion",
                ", ".join(f"{r['completion']:.2%}" for r in runs) + f"; peak live {show(peak)}",
                verdict(ok),
            )
        )
        floor_runs = hold.get("apps", {}).get("floor", {}).get(str(goal), [])
        rows.append(
            at_most(
                f"RSS per open stream ≤ {TARGET_RSS_KIB:g} KiB",
                spread(pick(runs, "rss_per_stream_kib")),
                spread(pick(floor_runs, "rss_per_stream_kib")),
                TARGET_RSS_KIB,
                " KiB",
            )
        )
    else:
        rows.append(Target("open streams", "—", "—", "not measured"))

    cancel = results.get("figures", {}).get("cancel", {}).get("scenarios", {})
    if cancel:
        worst = max((s["latency_ms"]["max"] or 0.0) for s in cancel.values())
        complete = all(s["measured"] == s["trials"] for s in cancel.values())
        medians = ", ".join(
            f"{label}: p50 {s['latency_ms']['p50']:.1f} ms" if s["latency_ms"]["p50"] else label
            for label, s in cancel.items()
        )
        rows.append(
            Target(
                f"cancellation ≤ {TARGET_CANCEL_MS:g} ms (worst trial)",
                f"max {worst:.1f} ms ({medians})",
                verdict(complete and worst <= TARGET_CANCEL_MS),
                "" if complete else "some trials did not stop within the trial timeout",
            )
        )
    else:
        rows.append(Target("cancellation", "—", "—", "not measured"))

    rps = json_spreads(results)
    r = ratio(rps.get("ours"), rps.get("ours-bare"))
    json_cpu = json_cpu_spreads(results)
    by_cpu = ratio(json_cpu.get("ours-bare"), json_cpu.get("ours"))
    rows.append(
        Target(
            f"JSON req/s: ours ≥ {TARGET_BARE_JSON_RATIO:g}x ours-bare",
            "—" if r is None else f"{r:.2f}x",
            verdict(None if r is None else r >= TARGET_BARE_JSON_RATIO),
            "" if by_cpu is None else f"by server CPU per request: {by_cpu:.2f}x",
        )
    )
    pending = results.get("pending", {})
    if "ours-redis" in pending:
        rows.append(
            Target(
                f"JSON req/s with Redis limiter ≥ {TARGET_REDIS_RATIO:g}x in-memory",
                "—",
                "PENDING",
                pending["ours-redis"],
            )
        )
    else:
        r = ratio(rps.get("ours-redis"), rps.get("ours"))
        json_apps = results.get("figures", {}).get("json", {}).get("apps", {})
        redis_runs = json_apps.get("ours-redis", [])
        fell_back = [run for run in redis_runs if redis_fell_back(run)]
        note = ""
        if fell_back:
            note = (
                f"{len(fell_back)} of {len(redis_runs)} runs left out: the limiter's circuit "
                "opened and it answered from its local fallback ("
                + ", ".join(f"{x['redis_commands']} Redis commands" for x in fell_back)
                + f" for {fell_back[0]['redis_requests']:,} requests)"
            )
        rows.append(
            Target(
                f"JSON req/s with Redis limiter ≥ {TARGET_REDIS_RATIO:g}x in-memory",
                "—" if r is None else f"{r:.2f}x",
                verdict(None if r is None else r >= TARGET_REDIS_RATIO),
                note,
            )
        )
    return rows


def redis_fell_back(run: dict[str, Any]) -> bool:
    """True when a Redis-limited run did not reach Redis for every request (circuit open)."""
    if "redis_requests" not in run:
        return False
    return bool(run.get("redis_commands", 0) < run["redis_requests"])


def json_spreads(results: Results) -> dict[str, Spread | None]:
    data = results.get("figures", {}).get("json", {}).get("apps", {})
    return {
        app: spread(pick([r for r in runs if not redis_fell_back(r)], "requests_per_s"))
        for app, runs in data.items()
    }


def json_cpu_spreads(results: Results) -> dict[str, Spread | None]:
    data = results.get("figures", {}).get("json", {}).get("apps", {})
    return {
        app: spread(pick([r for r in runs if not redis_fell_back(r)], "server_us_per_request"))
        for app, runs in data.items()
    }


# --- profile ---------------------------------------------------------------------

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


BENCH_APP_MODULES = {"floor", "naive", "fastapi_sse", "source", "bare_service"}


def frame_group(file: str) -> str:
    """Which package, stdlib module or service module a frame's file belongs to.

    py-spy names files relative to their ``sys.path`` entry when it can
    ("starlette/routing.py", "threading.py", "<frozen os>"), absolute otherwise.
    """
    if file == "<string>":
        return "generated code (dataclass __init__)"
    if file.startswith("<frozen "):
        return "stdlib " + file.removeprefix("<frozen ").rstrip(">").split(".")[0]
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    if "streaming_service/" in file:
        rest = file.split("streaming_service/", 1)[1].removesuffix(".py")
        if rest.startswith("middleware/"):
            return "service " + rest
        return "service " + rest.split("/")[0]
    match = re.search(r"/lib/python3\.\d+/(.*)$", file)
    if match:
        file = match.group(1)
    top = file.split("/")[0].removesuffix(".py")
    if top in BENCH_APP_MODULES or "/bench/apps/" in file:
        return "bench app " + Path(file).stem
    if top in sys.stdlib_module_names:
        return "stdlib " + top
    return top or "other"


def short_frame(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    for marker in ("site-packages/", "/bench/apps/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    file = file.removeprefix("streaming_service/")
    return f"{match.group('func')} ({file})"


def summarise_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """Self time by package and by function, and inclusive time of service functions."""
    self_groups: Counter[str] = Counter()
    self_funcs: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = threads = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        # py-spy puts the thread first; the leaf is where the CPU was.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[0].startswith(("Thread._bootstrap (threading", "_bootstrap (threading")):
            # A thread-pool worker (sync dependencies, run_in_threadpool): counted
            # apart, so that the shares below are shares of the event loop's time.
            threads += count
            continue
        total += count
        leaf = frames[-1]
        match = FRAME.match(leaf)
        self_groups[frame_group(match.group("file")) if match else "other"] += count
        self_funcs[short_frame(leaf)] += count
        for frame in set(frames):
            if "streaming_service/" in frame:
                inclusive[short_frame(frame)] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(top)]

    return {
        "samples": total,
        "worker_thread_share": threads / (total + threads),
        "self_by_group": share(self_groups),
        "self_by_function": share(self_funcs),
        "service_inclusive": share(inclusive),
    }


# --- markdown --------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


CONTENDED = 0.10  # cores of other processes on a pinned core that mark a run as contended


def measurements(results: Results) -> list[tuple[str, dict[str, Any]]]:
    """Every load-generator result with its figure and app, for contention accounting."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(label: str, node: Any) -> None:
        if isinstance(node, dict):
            if "foreign_server_core" in node:
                found.append((label, node))
                return
            for key, value in node.items():
                walk(f"{label} {key}" if key not in ("apps", "figures") else label, value)
        elif isinstance(node, list):
            for value in node:
                walk(label, value)

    walk("", results.get("figures", {}))
    return found


DAGGER = " †"
DAGGER_NOTE = (
    "† at least one run of this cell had other processes using more than "
    f"{CONTENDED:g} core on the server's or the client's core: treat it as a lower bound "
    "(tokens/s) and as unreliable (CPU per token, which drops when a slowed client lets "
    "writes coalesce)."
)


def contended(runs: list[dict[str, Any]]) -> str:
    """DAGGER when any of ``runs`` shared its cores with other processes."""
    for run in runs:
        if max(run.get("foreign_server_core", 0.0), run.get("foreign_client_core", 0.0)) > (
            CONTENDED
        ):
            return DAGGER
    return ""


def dagger_note(lines: list[str]) -> list[str]:
    return [DAGGER_NOTE, ""] if any(DAGGER in line for line in lines) else []


def contention(results: Results) -> tuple[int, int, float, list[str]]:
    """(runs, contended runs, worst foreign load in cores, labels of contended runs)."""
    runs = measurements(results)
    worst = 0.0
    labels = []
    for label, run in runs:
        foreign = max(run["foreign_server_core"], run["foreign_client_core"])
        worst = max(worst, foreign)
        if foreign > CONTENDED:
            labels.append(label.strip())
    return len(runs), len(labels), worst, labels


def section_machine(results: Results) -> list[str]:
    m = results.get("machine", {})
    v = m.get("versions", {})
    cores = results.get("cores", {})
    rows = [
        ["date", m.get("date", "?")],
        ["CPU", f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory', '?')}"],
        [
            "pinning",
            f"server on core {cores.get('server')}, load generator on core {cores.get('client')}",
        ],
        ["Python", f"{m.get('implementation', '')} {m.get('python', '?')}"],
        ["kernel", f"{m.get('kernel', '?')} (somaxconn {m.get('somaxconn', '?')})"],
        [
            "uvicorn / starlette / fastapi",
            f"{v.get('uvicorn')} / {v.get('starlette')} / {v.get('fastapi')}",
        ],
        [
            "uvloop / httptools / pydantic",
            f"{v.get('uvloop')} / {v.get('httptools')} / {v.get('pydantic')}",
        ],
        ["sse-starlette / slowapi", f"{v.get('sse-starlette')} / {v.get('slowapi')}"],
        [
            "timer jitter",
            "idle pinned uvloop, `asyncio.sleep(0.02)` wakes after "
            + (
                "p50 {p50:.2f} / p99 {p99:.2f} / max {max:.2f} ms".format(**jitter)
                if (jitter := results.get("timer_jitter_ms"))
                else "not measured"
            )
            + " (the floor under paced gaps)",
        ],
        ["template commit", f"{m.get('commit', '?')} (plus any uncommitted changes)"],
        ["other load", contention_text(results)],
        ["harness time", f"{results.get('seconds', 0):.0f} s ({results.get('mode')} mode)"],
    ]
    return ["## Machine", "", *table(["", ""], rows)]


def contention_text(results: Results) -> str:
    runs, contended, worst, _ = contention(results)
    quiet = results.get("quiet", {})
    text = (
        f"{contended} of {runs} measurements had other processes using more than "
        f"{CONTENDED:g} core on the server's or the client's core (worst {worst:.2f} cores)"
    )
    if quiet.get("waited_s"):
        text += f"; waited {quiet['waited_s']:.0f} s in all for a quiet machine"
        if quiet.get("gave_up"):
            text += f", gave up {quiet['gave_up']} time(s)"
    return text


def section_targets(results: Results) -> list[str]:
    rows = [[t.name, t.measured, f"**{t.verdict}**", t.note] for t in targets(results)]
    out = ["## Targets", ""]
    if results.get("mode") == "smoke":
        out += ["Smoke sizes: these verdicts say nothing about speed.", ""]
    return out + table(["target", "measured (median of runs)", "verdict", "note"], rows)


def section_unpaced(results: Results) -> list[str]:
    fig = results.get("figures", {}).get("unpaced")
    if not fig or not fig.get("apps"):
        return ["## 1. Unpaced streaming throughput", "", "Not measured.", ""]
    levels = results["sizes"]["levels"]
    apps = fig["apps"]
    runs_n = results["sizes"].get("unpaced_runs", results["sizes"]["runs"])
    out = [
        "## 1. Unpaced streaming throughput",
        "",
        f"Tokens per second received by the client, {fig['max_tokens']:,} tokens per stream, "
        f"streams requested back to back on keep-alive connections, counted over a "
        f"{results['sizes']['unpaced_seconds']:g} s window after warm-up; median (min-max) of "
        f"{runs_n} runs, a fresh server per run. Server CPU is utime+stime of the worker over "
        "the same window.",
        "",
    ]
    rows = []
    for app, data in apps.items():
        rows.append(
            [f"`{app}`"]
            + [
                show(spread(pick(data.get(str(lv), []), "tokens_per_s")))
                + contended(data.get(str(lv), []))
                for lv in levels
            ]
        )
    out += table(["app"] + [f"{lv:,} stream{'s' if lv > 1 else ''}" for lv in levels], rows)
    out += dagger_note(["|".join(row) for row in rows])
    out += ["Server CPU µs per token (lower is better), and the load generator's own CPU use:", ""]
    rows = []
    for app, data in apps.items():
        cells = [
            show(spread(pick(data.get(str(lv), []), "server_us_per_token")), 1)
            + contended(data.get(str(lv), []))
            for lv in levels
        ]
        util = spread([u for lv in levels for u in pick(data.get(str(lv), []), "client_util")])
        rows.append([f"`{app}`", *cells, show(util, 2)])
    out += table(["app"] + [f"µs/token @ {lv:,}" for lv in levels] + ["client CPU (cores)"], rows)
    tps = unpaced_spreads(results)
    rows = []
    for label, a, b in (
        ("ours / floor", "ours", "floor"),
        ("ours / naive", "ours", "naive"),
        ("ours / ours-bare", "ours", "ours-bare"),
        ("fastapi-sse / fastapi-plain", "fastapi-sse", "fastapi-plain"),
        ("floor / naive", "floor", "naive"),
    ):
        cells = []
        for lv in levels:
            r = ratio(tps.get(a, {}).get(lv), tps.get(b, {}).get(lv))
            cells.append("—" if r is None else f"{r:.2f}x")
        rows.append([label, *cells])
    cpu = unpaced_cpu(results)
    for label, a, b in (
        ("ours / floor", "ours", "floor"),
        ("ours / naive", "ours", "naive"),
        ("ours / ours-bare", "ours", "ours-bare"),
    ):
        cells = []
        for lv in levels:
            r = ratio(cpu.get(b, {}).get(lv), cpu.get(a, {}).get(lv))
            cells.append("—" if r is None else f"{r:.2f}x")
        rows.append([f"{label}, by server CPU per token", *cells])
    out += [
        "Ratios of median tokens/s, and the same by server CPU per token (theirs / ours) as a "
        "cross-check: on a quiet machine the two agree.",
        "",
    ]
    out += table(["ratio"] + [f"{lv:,}" for lv in levels], rows)
    sse_rows = []
    for lv in levels:
        r = ratio(tps.get("fastapi-sse", {}).get(lv), tps.get("fastapi-plain", {}).get(lv))
        if r is not None:
            sse_rows.append(f"{lv:,}: {(1 - r) * 100:+.0f}%")
    if sse_rows:
        costly = any(
            (ratio(tps.get("fastapi-sse", {}).get(lv), tps.get("fastapi-plain", {}).get(lv)) or 1)
            < FASTAPI_SSE_BUDGET
            for lv in levels
        )
        out += [
            "**fastapi.sse vs hand-written frames** (throughput lost by `fastapi.sse`, by "
            f"concurrency): {', '.join(sse_rows)}. "
            + (
                "It costs more than 10% somewhere: the service keeps writing frames itself."
                if costly
                else "It stays within 10% everywhere: the service could switch to fastapi.sse."
            ),
            "",
        ]
    return out


def section_paced(results: Results) -> list[str]:
    fig = results.get("figures", {}).get("paced")
    if not fig or not fig.get("apps"):
        return ["## 2. Paced streams", "", "Not measured.", ""]
    out = [
        "## 2. Paced streams",
        "",
        f"{fig['streams']:,} concurrent streams of {fig['max_tokens']} tokens at "
        f"{1000 / fig['delay_ms']:g} tokens/s (`FAKE_LLM_DELAY_MS={fig['delay_ms']}`), opened in "
        "batches of 100 every 100 ms; every token's arrival time recorded by the client. "
        "Median (min-max) over runs. The gap columns cover every gap; *while all open* "
        "only the gaps that ended between the last stream's first token and the first "
        "stream's end, when the worker paces all of them and starts none.",
        "",
    ]
    rate = 1000 / fig["delay_ms"]
    rows = []
    for app, runs in fig["apps"].items():
        rows.append(
            [
                f"`{app}`{contended(runs)}",
                show(spread(pick(runs, "completion")), 4),
                show(spread(pick(runs, "ttft_ms", "p50")), 1),
                show(spread(pick(runs, "ttft_ms", "p99")), 1),
                show(spread(pick(runs, "gap_ms", "p50")), 1),
                show(spread(pick(runs, "gap_ms", "p99")), 1),
                show(spread(pick(runs, "gap_ms", "max")), 1),
                show(spread(pick(runs, "steady_seconds")), 1, " s"),
                show(spread(pick(runs, "steady_gap_ms", "p99")), 1),
                show(spread(pick(runs, "server_util")), 2),
                show(spread(pick(runs, "client_util")), 2),
                show(spread(pick(runs, "server_us_per_token")), 1),
                show(spread(capacity(runs, rate))),
            ]
        )
    out += table(
        [
            "app",
            "completion",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "gap p50 ms",
            "gap p99 ms",
            "gap max ms",
            "all open for",
            "gap p99 ms while all open",
            "server CPU",
            "client CPU",
            "server µs/token",
            f"streams one core can pace at {rate:g} tok/s",
        ],
        rows,
    )
    out += dagger_note(["|".join(row) for row in rows])
    return [
        *out,
        "The last column is 10^6 / (server µs per token) / tokens per second: how many such "
        "streams one fully busy core could pace at this cost per token (stream starts "
        "included). Above it, gaps stretch and first tokens wait, whatever the code does "
        "per stream.",
        "",
    ]


def capacity(runs: list[dict[str, Any]], rate: float) -> list[float | None]:
    return [1e6 / us / rate if us else None for us in pick(runs, "server_us_per_token")]


def section_open(results: Results) -> list[str]:
    fig = results.get("figures", {}).get("open_streams")
    if not fig or not fig.get("apps"):
        return ["## 3. Open streams per worker", "", "Not measured.", ""]
    out = [
        "## 3. Open streams per worker",
        "",
        f"Streams of {fig['max_tokens']} tokens at {1000 / fig['delay_ms']:g} tokens/s "
        f"(~{(fig['max_tokens'] - 1) * fig['delay_ms'] / 1000:g} s each), opened in batches of "
        f"{results['sizes']['hold_batch']} every 50 ms. *Peak live* counts streams that had "
        "their first token and had not ended, sampled every 100 ms together with the worker's "
        "RSS and open descriptors; RSS per live stream = (RSS at that sample - RSS idle after "
        "warm-up) / live streams. While the worker is behind, it also holds accepted "
        "connections whose stream has not started: RSS per connection divides by those "
        "(descriptors above idle) instead, a lower bound of the cost of a stream.",
        "",
    ]
    rows = []
    for app, levels in fig["apps"].items():
        for level, runs in levels.items():
            rows.append(
                [
                    f"`{app}`{contended(runs)}",
                    f"{int(level):,}",
                    str(len(runs)),
                    show(spread(pick(runs, "completion")), 4),
                    show(spread(pick(runs, "peak_live"))),
                    show(spread([r["rss_idle"] / 2**20 for r in runs]), 1, " MiB"),
                    show(spread([r["rss_at_peak_live"] / 2**20 for r in runs]), 1, " MiB"),
                    show(spread(pick(runs, "rss_per_stream_kib")), 1, " KiB"),
                    show(spread(pick(runs, "connections_at_peak_live"))),
                    show(spread(pick(runs, "rss_per_connection_kib")), 1, " KiB"),
                    show(spread(pick(runs, "ttft_ms", "p99")), 0),
                    show(spread(pick(runs, "gap_ms", "p99")), 0),
                    show(spread(pick(runs, "ramp_seconds")), 1, " s"),
                    show(spread(pick(runs, "server_util")), 2),
                    show(spread(capacity(runs, 1000 / fig["delay_ms"]))),
                ]
            )
    out += table(
        [
            "app",
            "streams",
            "runs",
            "completion",
            "peak live",
            "RSS idle",
            "RSS at peak",
            "RSS / live stream",
            "open connections then",
            "RSS / connection",
            "TTFT p99 ms",
            "gap p99 ms",
            "ramp",
            "server CPU",
            "streams one core can pace",
        ],
        rows,
    )
    out += dagger_note(["|".join(row) for row in rows])
    return out


def section_json(results: Results) -> list[str]:
    fig = results.get("figures", {}).get("json")
    if not fig:
        return ["## 4. JSON requests/s", "", "Not measured.", ""]
    out = [
        "## 4. JSON requests/s through the full stack",
        "",
        f"`GET {fig['path']}`, {fig['clients']} keep-alive connections sharing "
        f"{fig['requests']:,} requests (after a warm-up), full middleware stack (`ours-bare`: "
        "the same app with none).",
        "",
    ]
    rows = []
    for app, runs in fig.get("apps", {}).items():
        rows.append(
            [
                f"`{app}`{contended(runs)}",
                show(spread(pick(runs, "requests_per_s"))),
                show(spread(pick(runs, "latency_ms", "p50")), 2),
                show(spread(pick(runs, "latency_ms", "p99")), 2),
                show(spread(pick(runs, "server_us_per_request")), 0),
                show(spread(pick(runs, "client_util")), 2),
                str(sum(r["requests"] - r["ok"] for r in runs)),
            ]
        )
    for app, reason in fig.get("pending", {}).items():
        rows.append([f"`{app}`", f"pending: {reason}", "", "", "", "", ""])
    out += table(
        ["app", "requests/s", "p50 ms", "p99 ms", "server µs/req", "client CPU", "non-200"], rows
    )
    out += dagger_note(["|".join(row) for row in rows])
    rps = json_spreads(results)
    r = ratio(rps.get("ours"), rps.get("ours-nolimit"))
    if r is not None:
        out += [
            f"In-memory limiter on vs off: **{r:.2f}x** the requests/s "
            f"({(1 - r) * 100:.0f}% cost).",
            "",
        ]
    r = ratio(rps.get("ours"), rps.get("ours-bare"))
    if r is not None:
        out += [
            f"Middleware stack on vs off (ours / ours-bare): **{r:.2f}x** the requests/s "
            f"({(1 - r) * 100:.0f}% cost).",
            "",
        ]
    for app, runs in fig.get("apps", {}).items():
        counted = [r for r in runs if "redis_requests" in r]
        if counted:
            out += [
                f"Redis commands seen per `{app}` run: "
                + ", ".join(
                    f"{r['redis_commands']:,}"
                    + (" (fell back to local)" if redis_fell_back(r) else "")
                    for r in counted
                )
                + f", for {counted[0]['redis_requests']:,} requests each (runs that fell back "
                "are left out of the ratio and the target).",
                "",
            ]
    return out


def section_cancel(results: Results) -> list[str]:
    fig = results.get("figures", {}).get("cancel")
    if not fig or not fig.get("scenarios"):
        return ["## 5. Cancellation latency", "", "Not measured.", ""]
    out = [
        "## 5. Cancellation latency",
        "",
        'The client opens a stream, waits until the service\'s `active_streams{transport="sse"}`'
        " gauge shows it, closes the socket, then polls `/metrics` every 1 ms on a keep-alive "
        "connection until the gauge is 0 again. Latency = close → first poll answer that reads 0, "
        "an upper bound (it includes up to one poll round trip).",
        "",
    ]
    rows = []
    for label, s in fig["scenarios"].items():
        lat = s["latency_ms"]
        rows.append(
            [
                label,
                f"{s['measured']}/{s['trials']}",
                "—" if lat["p50"] is None else f"{lat['p50']:.1f}",
                "—" if lat["p99"] is None else f"{lat['p99']:.1f}",
                "—" if lat["max"] is None else f"{lat['max']:.1f}",
                "—"
                if s["poll_round_trip_ms"]["p50"] is None
                else f"{s['poll_round_trip_ms']['p50']:.2f}",
            ]
        )
    out += table(
        ["scenario", "measured", "p50 ms", "p99 ms", "max ms", "poll round trip p50 ms"], rows
    )
    failures = [f for s in fig["scenarios"].values() for f in s.get("failures", [])]
    if failures:
        out += ["Failures: " + "; ".join(failures[:10]), ""]
    return out


def section_findings(results: Results) -> list[str]:
    out = ["## Findings", ""]
    runs, contended, worst, labels = contention(results)
    if contended:
        shown = ", ".join(sorted(set(labels))[:12])
        out += [
            f"**The machine was shared during this run**: {contended} of {runs} measurements "
            f"had other processes taking up to {worst:.2f} of a core from the server or the "
            f"client ({shown}). Those figures understate what the code can do; the median of "
            "runs absorbs a single contended run, not more.",
            "",
        ]
    missed = [t for t in targets(results) if t.verdict == "MISS"]
    if results.get("mode") == "smoke":
        out += ["Smoke run: no findings are drawn from smoke sizes.", ""]
    elif missed:
        out += ["Missed targets:", ""]
        out += [f"- **MISS** {t.name}: measured {t.measured}." for t in missed]
        out += [""]
    else:
        out += ["Every measured target passed.", ""]
    for error in results.get("errors", []):
        out += [f"- Figure `{error['figure']}` failed: `{error['error'].splitlines()[0]}`"]
    if results.get("errors"):
        out += [""]
    notes = BENCH / "NOTES.md"
    if results.get("mode") != "smoke" and notes.exists():
        out += [*notes.read_text().strip().splitlines(), ""]
    profiles = results.get("profiles") or {}
    if "error" in profiles:
        out += [f"Profiling skipped: {profiles['error']}", ""]
    for key, prof in profiles.items():
        if not isinstance(prof, dict) or key == "error":
            continue
        if "error" in prof:
            out += [f"Profile of {key} failed: {prof['error']}", ""]
            continue
        if not prof.get("samples"):
            continue
        out += [
            f"### Profile: {key} (py-spy, {prof['samples']:,} event-loop samples)",
            "",
            f"{prof.get('worker_thread_share', 0):.1%} of samples were in thread-pool worker "
            "threads (mostly waiting for work); the shares below are of the event loop's "
            "samples. Self time by package or service module (where the CPU was):",
            "",
        ]
        out += table(
            ["where", "share"],
            [[name, f"{share:.1%}"] for name, share in prof["self_by_group"][:12]],
        )
        out += ["Hottest functions (self time):", ""]
        out += table(
            ["function", "share"],
            [[f"`{name}`", f"{share:.1%}"] for name, share in prof["self_by_function"][:12]],
        )
        if prof.get("service_inclusive"):
            out += ["Service functions, inclusive time (on the stack):", ""]
            out += table(
                ["function", "share"],
                [[f"`{name}`", f"{share:.1%}"] for name, share in prof["service_inclusive"][:12]],
            )
    return out


def render_markdown(results: Results) -> str:
    sizes = results["sizes"]
    apps = results.get("apps", {})
    runs = sizes["runs"]
    unpaced_runs = sizes.get("unpaced_runs", runs)
    json_runs = sizes.get("json_runs", runs)
    if unpaced_runs == json_runs != runs:
        runs_note = f" (unpaced and JSON: {json_runs})"
    else:
        notes = [f"unpaced: {unpaced_runs}"] if unpaced_runs != runs else []
        notes += [f"JSON: {json_runs}"] if json_runs != runs else []
        runs_note = f" ({', '.join(notes)})" if notes else ""
    head = [
        "# Benchmark results",
        "",
        "Generated by `python bench/run.py`"
        + (" --smoke" if results.get("mode") == "smoke" else "")
        + "; do not edit by hand (notes for the Findings section go in `bench/NOTES.md`). "
        "Method and caveats: `bench/README.md`. Raw data: `results.json`.",
        "",
        f"Each figure is the median (min-max) of {sizes['runs']} run(s){runs_note}. Apps: "
        + "; ".join(f"`{name}` = {desc}" for name, desc in apps.items())
        + ".",
        "",
    ]
    body = (
        section_machine(results)
        + section_targets(results)
        + section_unpaced(results)
        + section_paced(results)
        + section_open(results)
        + section_json(results)
        + section_cancel(results)
        + section_findings(results)
    )
    return "\n".join(head + body).rstrip() + "\n"


# --- chart -----------------------------------------------------------------------


def headroom(results: Results) -> list[tuple[str, float]]:
    """measured/target for "at least" goals, target/measured for "at most": ≥ 1 passes."""
    bars: list[tuple[str, float]] = []
    tps = unpaced_spreads(results)
    for level in results["sizes"]["levels"]:
        ours = tps.get("ours", {}).get(level)
        r = ratio(ours, tps.get("floor", {}).get(level))
        if r is not None:
            bars.append((f"ours/floor @{level}", r / TARGET_FLOOR_RATIO))
        r = ratio(ours, tps.get("naive", {}).get(level))
        if r is not None:
            bars.append((f"ours/naive @{level}", r / TARGET_NAIVE_RATIO))
        r = ratio(ours, tps.get("ours-bare", {}).get(level))
        if r is not None:
            bars.append((f"ours/ours-bare @{level}", r / TARGET_BARE_RATIO))
    figs = results.get("figures", {})
    paced = figs.get("paced", {}).get("apps", {}).get("ours", [])
    gap = spread(pick(paced, "gap_ms", "p99"))
    if gap is not None and gap.median:
        bars.append(("paced gap p99", TARGET_GAP_MS / gap.median))
    if paced:
        bars.append(("paced completion", min(r["completion"] for r in paced)))
    hold = figs.get("open_streams", {})
    runs = hold.get("apps", {}).get("ours", {}).get(str(hold.get("target")), [])
    if runs:
        bars.append(("open-stream completion", min(r["completion"] for r in runs)))
        rss = spread(pick(runs, "rss_per_stream_kib"))
        if rss is not None and rss.median > 0:
            bars.append(("RSS/stream", TARGET_RSS_KIB / rss.median))
    cancel = figs.get("cancel", {}).get("scenarios", {})
    if cancel:
        worst = max((s["latency_ms"]["max"] or 0.0) for s in cancel.values())
        if worst > 0:
            bars.append(("cancel worst", TARGET_CANCEL_MS / worst))
    rps = json_spreads(results)
    r = ratio(rps.get("ours"), rps.get("ours-bare"))
    if r is not None:
        bars.append(("json ours/ours-bare", r / TARGET_BARE_JSON_RATIO))
    r = ratio(rps.get("ours-redis"), rps.get("ours"))
    if r is not None:
        bars.append(("redis/in-memory", r / TARGET_REDIS_RATIO))
    return bars


def write_chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    title = "FastAPI LLM streaming service — benchmark"
    if results.get("mode") == "smoke":
        title += " (SMOKE SIZES: not a measurement)"
    fig.suptitle(f"{title}\n{results.get('machine', {}).get('date', '')}", fontsize=12)

    # (a) unpaced tokens/s
    ax = axes[0][0]
    tps = unpaced_spreads(results)
    levels = results["sizes"]["levels"]
    apps = list(tps)
    width = 0.8 / max(1, len(apps))
    for i, app in enumerate(apps):
        xs, ys, lo, hi = [], [], [], []
        for j, level in enumerate(levels):
            s = tps[app].get(level)
            if s is None:
                continue
            xs.append(j + i * width)
            ys.append(s.median)
            lo.append(s.median - s.low)
            hi.append(s.high - s.median)
        ax.bar(xs, ys, width, yerr=[lo, hi], label=app, capsize=2)
    ax.set_xticks([j + width * (len(apps) - 1) / 2 for j in range(len(levels))])
    ax.set_xticklabels([f"{lv:,} streams" for lv in levels])
    ax.set_ylabel("tokens/s (median, min-max)")
    ax.set_title("Unpaced throughput")
    ax.legend(fontsize=8)

    # (b) server CPU per token
    ax = axes[0][1]
    data = results.get("figures", {}).get("unpaced", {}).get("apps", {})
    for i, app in enumerate(data):
        ys = []
        for level in levels:
            s = spread(pick(data[app].get(str(level), []), "server_us_per_token"))
            ys.append(s.median if s else 0.0)
        ax.bar([j + i * width for j in range(len(levels))], ys, width, label=app)
    ax.set_xticks([j + width * (len(apps) - 1) / 2 for j in range(len(levels))])
    ax.set_xticklabels([f"{lv:,} streams" for lv in levels])
    ax.set_yscale("log")
    ax.set_ylabel("server CPU µs per token (log)")
    ax.set_title("Server cost per token")
    ax.legend(fontsize=8)

    # (c) targets headroom
    ax = axes[0][2]
    bars = headroom(results)
    if bars:
        names = [b[0] for b in bars]
        values = [b[1] for b in bars]
        colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
        ax.barh(names, values, color=colors)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ticks = [t for t in (0.1, 0.25, 0.5, 1, 2, 4, 10, 25, 100) if t <= max(values) * 2]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("measured vs target (≥ 1 meets it; log)")
    ax.set_title("Targets")

    # (d) paced latencies
    ax = axes[1][0]
    paced = results.get("figures", {}).get("paced", {}).get("apps", {})
    metrics: list[tuple[str, Callable[[list[dict[str, Any]]], Spread | None]]] = [
        ("TTFT p50", lambda r: spread(pick(r, "ttft_ms", "p50"))),
        ("TTFT p99", lambda r: spread(pick(r, "ttft_ms", "p99"))),
        ("gap p50", lambda r: spread(pick(r, "gap_ms", "p50"))),
        ("gap p99", lambda r: spread(pick(r, "gap_ms", "p99"))),
    ]
    pw = 0.8 / max(1, len(paced))
    for i, (app, runs) in enumerate(paced.items()):
        ys = []
        for _, fn in metrics:
            s = fn(runs)
            ys.append(s.median if s else 0.0)
        ax.bar([j + i * pw for j in range(len(metrics))], ys, pw, label=app)
    ax.axhline(TARGET_GAP_MS, color="tab:red", linestyle="--", linewidth=1, label="gap target")
    ax.set_xticks([j + pw * (len(paced) - 1) / 2 for j in range(len(metrics))])
    ax.set_xticklabels([m[0] for m in metrics])
    # First tokens can wait seconds while gaps are tens of ms: one log axis shows both.
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    streams = results.get("figures", {}).get("paced", {}).get("streams", "?")
    ax.set_title(f"Paced: {streams} streams x 50 tok/s")
    ax.legend(fontsize=8)

    # (e) JSON req/s
    ax = axes[1][1]
    rps = json_spreads(results)
    names = [n for n, s in rps.items() if s is not None]
    if names:
        med = [rps[n].median for n in names]  # type: ignore[union-attr]
        lo = [rps[n].median - rps[n].low for n in names]  # type: ignore[union-attr]
        hi = [rps[n].high - rps[n].median for n in names]  # type: ignore[union-attr]
        ax.bar(names, med, yerr=[lo, hi], capsize=3, color="tab:blue")
    for name in results.get("figures", {}).get("json", {}).get("pending", {}):
        ax.bar([name], [0])
        ax.annotate("pending", (name, 0), ha="center", va="bottom")
    ax.set_ylabel("requests/s")
    ax.set_title("GET /api/v1/models")

    # (f) cancellation
    ax = axes[1][2]
    cancel = results.get("figures", {}).get("cancel", {}).get("scenarios", {})
    labels = list(cancel)
    samples = [cancel[k].get("latencies_ms") or [0.0] for k in labels]
    if labels:
        ax.boxplot(samples, showfliers=True)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, fontsize=8)
    ax.axhline(TARGET_CANCEL_MS, color="tab:red", linestyle="--", linewidth=1, label="target")
    ax.set_ylabel("close → generation stopped (ms)")
    ax.set_title("Cancellation latency")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(results: Results, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "RESULTS.md").write_text(render_markdown(results), encoding="utf-8")
    write_chart(results, out / "results.png")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: report.py results.json [out_dir]", file=sys.stderr)
        return 2
    source = Path(argv[1])
    results = json.loads(source.read_text())
    write(results, Path(argv[2]) if len(argv) == 3 else source.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
