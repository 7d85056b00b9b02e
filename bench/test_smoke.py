"""The benchmark harness in smoke mode: every figure is produced, at tiny sizes.

Runs ``python bench/run.py --smoke`` as a subprocess (it starts servers and load
generators of its own) and checks the results it writes. It asserts no speed.
Needs bench/requirements.txt installed besides cookiecutter and pytest.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
FIGURES = ("unpaced", "paced", "open_streams", "json", "cancel")
HEADINGS = (
    "## Targets",
    "## 1. Unpaced streaming throughput",
    "## 2. Paced streams",
    "## 3. Open streams per worker",
    "## 4. JSON requests/s",
    "## 5. Cancellation latency",
)
NEEDED = (
    *("cookiecutter", "uvicorn", "uvloop", "httptools", "fastapi", "sse_starlette", "slowapi"),
    *("matplotlib", "structlog", "prometheus_client", "limits", "pydantic_settings"),
)


def test_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    assert not missing, f"install bench/requirements.txt first; missing: {', '.join(missing)}"

    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"smoke run failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert not results["errors"], results["errors"]
    figures = results["figures"]
    for figure in FIGURES:
        assert figure in figures, f"figure {figure} missing"
    for app, levels in figures["unpaced"]["apps"].items():
        for level, runs in levels.items():
            assert runs, f"unpaced {app} at {level} has no run"
            assert runs[0]["tokens"] > 0, f"unpaced {app} at {level} counted no token"
    for app, runs in figures["paced"]["apps"].items():
        assert runs, f"paced {app} has no run"
        assert runs[0]["tokens"] > 0, f"paced {app} counted no token"
    assert figures["open_streams"]["apps"]["ours"], "no open-stream measurement"
    for app, runs in figures["json"]["apps"].items():
        assert runs, f"json {app} has no run"
        assert runs[0]["ok"] > 0, f"json {app} had no successful request"
    for label, scenario in figures["cancel"]["scenarios"].items():
        assert scenario["measured"] > 0, f"cancellation {label} measured nothing"

    markdown = (tmp_path / "RESULTS.md").read_text()
    for heading in HEADINGS:
        assert heading in markdown, f"RESULTS.md lacks {heading!r}"
    assert (tmp_path / "results.png").stat().st_size > 10_000
