#!/usr/bin/env python3
"""Run the reliability suite and rewrite RELIABILITY.md: ``python3 scripts/reliability.py``.

1. Uses the test environment of ``scripts/test.py`` (``.venv``, created or refreshed
   from pyproject.toml, and ``redis-server``), unless ``--python PATH`` names another
   interpreter that has the test requirements;
2. runs ``pytest tests/reliability`` on two workers; every test writes its figures as
   JSON into ``.cache/reliability/``;
3. renders those figures into ``RELIABILITY.md``, each row described by its test
   module's docstring, and exits with pytest's exit code.

``--render-only`` skips step 2 and renders the figures of the last run;
``--no-render`` skips step 3 (``scripts/test.py`` runs it so). Other arguments
go to pytest, e.g. ``python3 scripts/reliability.py -k storm``.
Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".cache" / "reliability"
TESTS = ROOT / "tests" / "reliability"
OUTPUT = ROOT / "RELIABILITY.md"
COMMAND = "python3 scripts/reliability.py"

VARIANTS = {
    "noredis-nojwt-nogrpc-nographql": "default (no optional feature)",
    "redis-jwt-grpc-graphql": "all-on (every feature)",
    "redis-nojwt-nogrpc-nographql": "Redis only (for Redis faults)",
}

# The first line of each test module's docstring: "Item <row>, <title>: <what it proves>."
# The rest of the docstring is how it proves it; RELIABILITY.md prints both, so the
# description of a row lives in one place, next to the code it describes.
HEADLINE = re.compile(r"Item (?P<number>\d+[a-z]?), (?P<title>[^:]+): (?P<claim>.+)")


@dataclass(frozen=True)
class Item:
    """One test module of the reliability suite: a row of RELIABILITY.md."""

    module: str
    number: str
    title: str
    claim: str
    body: str

    @property
    def heading(self) -> str:
        return f"{self.number} {self.title}"

    @property
    def order(self) -> tuple[int, str]:
        """Row 7a before 7b before 10."""
        digits = re.match(r"\d+", self.number)
        assert digits is not None
        return int(digits[0]), self.number


def markdown(text: str) -> str:
    """A docstring's reStructuredText literals (``x``) as Markdown code (`x`)."""
    return text.replace("``", "`")


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def items() -> dict[str, Item]:
    """Every test module of the suite, described by its own docstring, in row order."""
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first, _, body = docstring.partition("\n")
        match = HEADLINE.fullmatch(first.strip())
        if match is None:
            raise SystemExit(
                f"{path.relative_to(ROOT)}: the docstring must start with "
                "'Item <row>, <title>: <what it proves>.'"
            )
        found.append(
            Item(
                module=path.stem,
                number=match["number"],
                title=capitalised(match["title"]),
                claim=markdown(capitalised(match["claim"])),
                body=markdown(body.strip()),
            )
        )
    found.sort(key=lambda item: item.order)
    return {item.module: item for item in found}


# Details worth a place in the table, per item.
KEY_FIGURES: dict[str, list[str]] = {
    "test_schema_fuzz": ["operations", "test_cases", "unique_failures", "schemathesis_seconds"],
    "test_storm": [
        "transports",
        "storm_seconds",
        "drained_after_s",
        "first_storm_growth_mib",
        "rss_growth_mib",
        "rss_peak_mib",
    ],
    "test_slow_clients": [
        "stuck_readers.rss_growth_mib",
        "stuck_readers.rss_growth_last_4s_mib",
        "abandoned_unpaced_stream.event_loop_stall_s",
        "abandoned_unpaced_stream.finish_reasons",
        "trickled_headers.tricklers_still_open",
        "trickled_headers.max_with_tricklers_ms",
        "oversized_header_httptools.rss_held_mib",
        "oversized_header_h11.answer",
    ],
    "test_shutdown": ["streams", "streams_ended_s", "exited_after_s", "exit_code"],
    "test_redis_faults": [
        "statuses",
        "max_ms",
        "closed_recovered_after_restart_s",
        "shared_again_after_restart_s",
        "shared_again_after_pause_s",
    ],
    "test_upstream_faults": [
        "faults",
        "upstream_streams_opened",
        "upstream_streams_closed",
        "slowest_s",
    ],
    "test_bad_input": ["http_cases", "websocket_cases", "statuses"],
    "test_properties": ["properties", "max_examples"],
}

RESPONSIBILITY_ROWS = [
    (
        "Client stops reading a stream",
        "Flow control: uvicorn pauses the writer once the socket buffers are full, the "
        "generation waits, memory stays bounded (row 3). Nothing times the client out: the "
        "stream and its generation slot are held for as long as the TCP connection lives.",
        "`send_timeout 60s` closes a client that reads nothing for 60 s; nginx then closes "
        "the upstream connection and the service cancels the generation.",
    ),
    (
        "Request head trickled byte by byte",
        "uvicorn has no header timeout: such a connection stays open indefinitely (measured: "
        "all 50 still open after 4 s). It costs a socket and a few kB; other clients are not "
        "slowed down (row 3).",
        "`client_header_timeout 10s` cuts it.",
    ),
    (
        "Oversized request head",
        "With httptools (the parser `uvicorn[standard]` installs) nothing bounds it: an "
        "unterminated 8 MiB header line is buffered whole (RSS +8 MiB per connection, freed "
        "on close). With `--http h11`, `h11_max_incomplete_event_size` (16 KiB) refuses it "
        "with 400.",
        "`large_client_header_buffers` (nginx default 4 x 8k) refuses it with 400/494 before "
        "it reaches the service.",
    ),
    (
        "Slow or oversized body",
        "`MAX_REQUEST_SIZE` (413, counted as it arrives for chunked bodies).",
        "`client_body_timeout 30s`, `client_max_body_size 1m`.",
    ),
    (
        "Upstream LLM slow or stuck",
        "`LLM_READ_TIMEOUT` between tokens, `FIRST_TOKEN_TIMEOUT`, `GENERATION_TIMEOUT`; "
        "errors mapped to 502/503/504 or an error event (row 6).",
        "`proxy_read_timeout 120s` (longer than the keep-alive and ping intervals).",
    ),
]


def responsibilities() -> list[str]:
    lines = [
        "## Who bounds what: the service or the reverse proxy",
        "",
        "| Threat | The service (uvicorn + app) | The reverse proxy (`deploy/nginx.conf`) |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {threat} | {service} | {proxy} |" for threat, service, proxy in RESPONSIBILITY_ROWS
    ]
    lines += [
        "",
        "Exposed without the proxy, the service bounds trickled and oversized request heads",
        "only by the number of sockets it may hold (or run uvicorn with `--http h11`).",
    ]
    return lines


def say(message: str) -> None:
    print(f"[reliability.py] {message}", flush=True)


def load_test_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "template_test_script", ROOT / "scripts" / "test.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_suite(python: str | None, pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    if python is None:
        test_script = load_test_script()
        test_script.ensure_venv()
        test_script.ensure_redis()
        python = str(test_script.PYTHON)
        env["VIRTUAL_ENV"] = str(test_script.VENV)
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    for old in [*RESULTS.glob("*.json"), *RESULTS.glob("*.txt")]:
        old.unlink()
    command = [
        python,
        "-m",
        "pytest",
        "tests/reliability",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    say(" ".join(command[1:]))
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def dig(details: dict[str, Any], key: str) -> Any:
    value: Any = details
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(short(v) for v in value) + "]"
    return str(value)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows_proved(rows: dict[str, Item]) -> list[str]:
    """What each row proves: each test module's docstring."""
    lines = [
        "## What each row proves",
        "",
        "Each row's text is its test module's docstring (`tests/reliability/test_*.py`).",
    ]
    for item in rows.values():
        lines += ["", f"### {item.heading}", "", item.claim]
        if item.body:
            lines += ["", item.body]
    return lines


def render(
    records: list[dict[str, Any]], suite_seconds: float | None, exit_code: int | None
) -> str:
    rows = items()
    order = {name: index for index, name in enumerate(rows)}
    records.sort(
        key=lambda r: (
            order.get(r["item"], 99),
            list(VARIANTS).index(r["variant"]) if r["variant"] in VARIANTS else 9,
        )
    )
    finished = max((r.get("finished_at", "") for r in records), default="")
    lines = [
        "# Reliability and security",
        "",
        f"Generated by `{COMMAND}` from the figures of its last run; do not edit by hand.",
        "The tests live in `tests/reliability/` and also run with the rest of the template's",
        "tests (`python3 scripts/test.py`). Each one renders a variant, starts it as a real",
        "uvicorn subprocess on 127.0.0.1 and drives it with bounded load that stops by itself.",
        "",
        "Variants:",
        "",
    ]
    lines += [f"- `{variant}`: {what}" for variant, what in VARIANTS.items()]
    passed = sum(r["outcome"] == "passed" for r in records)
    run_line = f"Last run: {finished or 'unknown'}; {passed} of {len(records)} tests passed"
    if suite_seconds is not None:
        run_line += f"; the suite took {suite_seconds:.0f} s on two workers"
    if exit_code is not None:
        run_line += f" (pytest exit code {exit_code})"
    lines += ["", run_line + ".", "", "## Results", ""]
    lines += [
        "| # | What | Variant | Result | Requests | Faults injected | Streams dropped "
        "| Failures | Duration | Figures |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for record in records:
        item = rows.get(record["item"])
        number, title = (item.number, item.title) if item else ("?", record["item"])
        figures = "; ".join(
            f"{key.split('.')[-1]}: {short(value)}"
            for key in KEY_FIGURES.get(record["item"], [])
            if (value := dig(record["details"], key)) is not None
        )
        result = {"passed": "pass", "failed": "**FAIL**", "error": "**ERROR**"}.get(
            record["outcome"], record["outcome"]
        )
        lines.append(
            f"| {number} | {title} | `{record['variant']}` | {result} | {record['requests']} "
            f"| {record['faults']} | {record['dropped']} | {record['failures']} "
            f"| {record['duration_s']:.0f} s | {cell(figures)} |"
        )
    missing = [
        item.heading for item in rows.values() if not any(r["item"] == item.module for r in records)
    ]
    if missing:
        lines += ["", "Not run in the last run: " + ", ".join(missing) + "."]
    lines += ["", *rows_proved(rows)]
    failing = [r for r in records if r["outcome"] != "passed"]
    lines += ["", "## Failures of the last run", ""]
    if not failing:
        lines.append("None.")
    for record in failing:
        item = rows.get(record["item"])
        heading = item.heading if item else f"? {record['item']}"
        lines += ["", f"### {heading}, `{record['variant']}`", ""]
        lines += [f"- {cell(problem)[:700]}" for problem in record["problems"][:25]]
        if len(record["problems"]) > 25:
            lines.append(f"- ... and {len(record['problems']) - 25} more")
    lines += ["", *responsibilities(), ""]
    lines += [
        "## Details",
        "",
        "Every test's full figures are in `.cache/reliability/<test>.json` after a run, and",
        "schemathesis's own report (with a `curl` line per failure) in",
        "`.cache/reliability/schemathesis-<variant>.txt`.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="interpreter with the test requirements (default: .venv)")
    parser.add_argument("--render-only", action="store_true", help="render the last run's figures")
    parser.add_argument(
        "--no-render", action="store_true", help="run and keep the figures; leave RELIABILITY.md"
    )
    args, pytest_args = parser.parse_known_args()
    os.chdir(ROOT)
    RESULTS.mkdir(parents=True, exist_ok=True)
    code: int | None = None
    seconds: float | None = None
    if not args.render_only:
        started = time.monotonic()
        code = run_suite(args.python or os.environ.get("RELIABILITY_PYTHON"), pytest_args)
        seconds = time.monotonic() - started
    if args.no_render:
        return code if code is not None else 0
    records = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))]
    if not records:
        say("no figures found in .cache/reliability/: nothing to render")
        return code or 1
    OUTPUT.write_text(render(records, seconds, code), encoding="utf-8")
    say(f"wrote {OUTPUT.relative_to(ROOT)} from {len(records)} test records")
    return code if code is not None else 0


if __name__ == "__main__":
    sys.exit(main())
