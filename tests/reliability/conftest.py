"""Fixtures of the reliability suite: the rendered project, its deployment, and the figures.

Every test records what it did (requests sent, faults injected, streams dropped,
failures, duration, and its own details) through ``figures``; when the test ends
the record is written as JSON to ``.cache/reliability/`` with the test's outcome,
and ``scripts/reliability.py`` renders RELIABILITY.md from those files.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness.process import raise_nofile_limit
from support import Variant

from .harness import RESULTS_DIR, Deployment, Project, deploy

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@dataclass
class Figures:
    """What one test did, for RELIABILITY.md."""

    item: str = ""
    variant: str = ""
    test: str = ""
    requests: int = 0
    faults: int = 0
    dropped: int = 0
    failures: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, problems: list[str], limit: int = 25) -> None:
        """Record the problems found and fail the test if there are any."""
        self.problems = list(problems)
        self.failures = len(problems)
        if problems:
            shown = problems[:limit]
            more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
            pytest.fail(
                f"{len(problems)} failure(s):\n- " + "\n- ".join(shown) + more, pytrace=False
            )


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    node = request.node
    variant = getattr(node, "callspec", None)
    variant_id = str(variant.params.get("variant", "")) if variant is not None else ""
    record = Figures(item=Path(str(node.fspath)).stem, variant=variant_id, test=node.name)
    started = time.monotonic()
    yield record
    duration = time.monotonic() - started
    reports = node.stash.get(REPORTS, {})
    call = reports.get("call")
    setup = reports.get("setup")
    setup_failed = setup is not None and setup.failed
    outcome = "error" if setup_failed or call is None else call.outcome
    if outcome != "passed":
        record.failures = max(record.failures, 1)
        if not record.problems and call is not None and call.longreprtext:
            record.problems = [call.longreprtext.strip().splitlines()[-1][:500]]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{record.item}--{node.name}")
    data = {
        "item": record.item,
        "test": record.test,
        "variant": record.variant,
        "outcome": outcome,
        "duration_s": round(duration, 1),
        "requests": record.requests,
        "faults": record.faults,
        "dropped": record.dropped,
        "failures": record.failures,
        "details": record.details,
        "problems": record.problems[:50],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")


@pytest.fixture
def rel_project(project: Path, variant: Variant) -> Project:
    """The rendered variant under test."""
    raise_nofile_limit()
    return Project(project, variant)


@pytest.fixture
def deployment(rel_project: Project, tmp_path: Path) -> Iterator[Deployment]:
    """The variant's settings and credentials, with its Redis running if it has one."""
    with contextlib.ExitStack() as stack:
        yield deploy(rel_project, tmp_path, stack)
