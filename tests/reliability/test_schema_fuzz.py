"""Item 1, schema fuzzing: schemathesis against each variant's /openapi.json, zero failures.

The service runs as a real uvicorn subprocess; schemathesis (its CLI, so every phase
and check behaves as documented) runs the examples, coverage and fuzzing phases on
every operation, 30 examples per operation, in deterministic mode with a fixed seed
(20261124), so that a failure reproduces. Its checks: ``not_a_server_error``,
``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance`` (SSE events included), ``negative_data_rejection``,
``positive_data_acceptance``, ``missing_required_header``, and ``ignored_auth`` where
auth is on. Streams are kept short (``MAX_TOKENS_LIMIT`` and no pacing) so that SSE
responses, which schemathesis reads and checks event by event, end quickly. Nothing
may be skipped: every operation must be tested and the run must report no error.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import PYTHON, clean_env

from .conftest import Figures
from .harness import ALL_ON, DEFAULT, RESULTS_DIR, Deployment, Service, variant_params

pytestmark = pytest.mark.parametrize("variant", variant_params("fuzz", DEFAULT, ALL_ON))

MAX_EXAMPLES = 30
SEED = 20261124
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
]
AUTH_CHECKS = ["ignored_auth"]
CLI = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"


# What JSON Schema cannot state, so that a schema-valid body may still be refused:
# which operations a GraphQL document names (operationName; Strawberry answers
# 400), and the references inside a chat request: distinct tool names, tool turns
# that answer calls made earlier in it, a named tool_choice that names one of its
# tools (400 on the OpenAI route, 422 natively). Schema-invalid bodies must still be
# refused (negative_data_rejection).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
"""


def schemathesis_command(service: Service, report: Path) -> list[str]:
    checks = CHECKS + (AUTH_CHECKS if service.headers else [])
    config = report.with_name("schemathesis.toml")
    config.write_text(CONFIG, encoding="utf-8")
    command = [
        PYTHON,
        "-c",
        CLI,
        "--config-file",
        str(config),
        "run",
        service.url + "/openapi.json",
        "--checks",
        ",".join(checks),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # Deterministic mode also keeps no example database (nothing written to disk).
        "--generation-deterministic",
        "--workers",
        "1",
        "--continue-on-failure",
        "--request-timeout",
        "30",
        "--no-color",
        "--output-sanitize",
        "false",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    for name, value in service.headers.items():
        command += ["--header", f"{name}: {value}"]
    return command


def reproducers(output: str) -> list[str]:
    """``<operation>: <failure title> -> curl ...`` for each failure the CLI printed."""
    found = []
    operation = title = ""
    for line in output.splitlines():
        if match := re.match(r"_+ (\S+ \S+) _+$", line):
            operation = match.group(1)
        elif match := re.match(r"- (ST\d+ .+)$", line):
            title = match.group(1)
        elif line.startswith("    curl "):
            found.append(f"{operation}: {title} -> {line.strip()}")
    return found


@pytest.mark.timeout(400)
def test_openapi_schema_fuzzing(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    service = Service(
        deployment,
        tmp_path / "service.log",
        env={"MAX_TOKENS_LIMIT": "64", "DEFAULT_MAX_TOKENS": "16", "FAKE_LLM_DELAY_MS": "0"},
    ).start()
    report_path = tmp_path / "schemathesis.json"
    try:
        run = subprocess.run(
            schemathesis_command(service, report_path),
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=330,
            check=False,
        )
    finally:
        service.stop()
    output = run.stdout + run.stderr
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"schemathesis-{variant.id}.txt").write_text(output, encoding="utf-8")

    problems: list[str] = []
    if not report_path.exists():
        pytest.fail(f"schemathesis wrote no report (exit {run.returncode}):\n{output[-3000:]}")
    report: dict[str, Any] = json.loads(report_path.read_text())
    operations = report["operations"]
    cases = report["test_cases"]
    if (
        operations["tested"] != operations["total"]
        or operations["skipped"]
        or operations["errored"]
    ):
        problems.append(f"not every operation was tested: {operations}")
    for phase, state in report["phases"].items():
        # Stateful testing is left out on purpose (--phases); any other skip is a finding.
        if state["status"] == "skip" and state.get("skip_reason") not in (
            "not_applicable",
            "disabled",
        ):
            problems.append(f"phase {phase} skipped: {state}")
    for error in report["errors"]:
        problems.append(f"schemathesis error: {json.dumps(error)[:400]}")
    for failure in report["failures"]:
        problems.append(
            f"{failure['code']} {failure['title']} ({failure['count']}x): "
            + ", ".join(failure["operations"])
        )
    problems += reproducers(output)
    if run.returncode != 0 and not problems:
        problems.append(f"schemathesis exited {run.returncode}:\n{output[-2000:]}")
    problems += [f"log: {p}" for p in service.log_problems()]

    figures.requests = int(cases["generated"])
    figures.faults = int(cases["generated"])
    figures.details = {
        "operations": operations["tested"],
        "checks": CHECKS + (AUTH_CHECKS if service.headers else []),
        "max_examples": MAX_EXAMPLES,
        "seed": SEED,
        "deterministic": True,
        "test_cases": cases["generated"],
        "unique_failures": cases["unique_failures"],
        "warnings": {k: v for k, v in report.get("warnings", {}).items() if v},
        "schemathesis_seconds": round(float(report["running_time"]), 1),
        "schemathesis_version": report["schemathesis_version"],
    }
    figures.check(problems, limit=40)
