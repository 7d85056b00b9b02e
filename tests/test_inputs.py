"""Answers given on the command line: bad ones are refused, yes/no aliases accepted.

Rendering runs ``cookiecutter --no-input <template> key=value`` in a subprocess so
the test reads exactly what a user would see on stderr.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support import (
    BOOLEAN_PROMPTS,
    COOKIECUTTER_JSON,
    PYTHON,
    ROOT,
    Run,
    clean_env,
    expected_paths,
    render_path,
    run,
)

HOOK = "pre_gen_project hook"
COOKIECUTTER = "cookiecutter"  # refuses a value before any hook runs

# (variable, bad value, who refuses it)
BAD_INPUTS = [
    ("project_name", "", HOOK),
    ("project_name", "   ", HOOK),
    ("project_slug", "my project", HOOK),
    ("project_slug", "MyProject", HOOK),
    ("package_name", "json", HOOK),
    ("package_name", "fastapi", HOOK),
    ("package_name", "test", HOOK),
    ("package_name", "class", HOOK),
    ("package_name", "1abc", HOOK),
    ("package_name", "my-pkg", HOOK),
    ("author_email", "nope", HOOK),
    ("version", "x.y", HOOK),
    ("python_version", "3.9", COOKIECUTTER),
    *((prompt, "maybe", COOKIECUTTER) for prompt in BOOLEAN_PROMPTS),
]


def bad_id(variable: str, value: str) -> str:
    shown = value.strip().replace(" ", "_") or ("blank" if value else "empty")
    return f"{variable}={shown}"


class Cli:
    """``cookiecutter --no-input`` on this template, isolated from the user's config."""

    def __init__(self, tmp: Path) -> None:
        self.out = tmp / "out"
        self.replay = tmp / "replay"
        self.config = tmp / "config.yaml"
        self.config.write_text(
            f"cookiecutters_dir: {json.dumps(str(tmp / 'cookiecutters'))}\n"
            f"replay_dir: {json.dumps(str(self.replay))}\n",
            encoding="utf-8",
        )

    def render(self, *answers: str) -> Run:
        command = [PYTHON, "-m", "cookiecutter", "--no-input", "--config-file", str(self.config)]
        return run([*command, "-o", str(self.out), str(ROOT), *answers], cwd=self.out.parent)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.out.iterdir()) if self.out.exists() else []

    def replayed_context(self) -> dict[str, object]:
        (replay,) = self.replay.glob("*.json")
        return dict(json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def separate_stderr(cli: Cli, *answers: str) -> tuple[int, str, str]:
    """Like Cli.render, but with stdout and stderr apart (the hook writes to stderr)."""
    command = [PYTHON, "-m", "cookiecutter", "--no-input", "--config-file", str(cli.config)]
    proc = subprocess.run(
        [*command, "-o", str(cli.out), str(ROOT), *answers],
        cwd=cli.out.parent,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("variable", "value", "refused_by"),
    [pytest.param(*row, id=bad_id(*row[:2])) for row in BAD_INPUTS],
)
def test_bad_input_is_refused(cli: Cli, variable: str, value: str, refused_by: str) -> None:
    code, stdout, stderr = separate_stderr(cli, f"{variable}={value}")
    shown = f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    assert code != 0, f"{variable}={value!r} was accepted\n{shown}"
    if refused_by == HOOK:
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
        assert len(errors) == 1, f"expected one ERROR: line on stderr\n{shown}"
        assert errors[0].startswith(f"ERROR: {variable}="), shown
        assert "expected" in errors[0], shown
    else:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        assert variable in last, f"the last error line must name the variable\n{shown}"
        assert value in last, f"the last error line must name the value\n{shown}"
    assert cli.leftovers() == [], f"output left behind: {cli.leftovers()}"


FREE_TEXT = {"description", "author_name"}


def test_every_checked_variable_has_a_bad_input_row() -> None:
    checked = {k for k in COOKIECUTTER_JSON if not k.startswith("_")} - FREE_TEXT
    missing = checked - {row[0] for row in BAD_INPUTS}
    assert not missing, f"no bad-input row for {sorted(missing)}"


# (answers on the command line, the prompts they switch on)
ALIASES = [
    pytest.param(("use_redis=yes", "use_grpc=true"), {"use_redis", "use_grpc"}, id="yes-true"),
    pytest.param(("use_jwt=y", "use_graphql=1"), {"use_jwt", "use_graphql"}, id="y-1"),
    pytest.param(
        tuple(
            f"{p}={v}" for p, v in zip(BOOLEAN_PROMPTS, ("no", "false", "off", "0"), strict=False)
        ),
        set(),
        id="no-false-off-0",
    ),
]


@pytest.mark.parametrize(("answers", "switched_on"), ALIASES)
def test_yes_no_aliases_are_accepted(
    cli: Cli, answers: tuple[str, ...], switched_on: set[str]
) -> None:
    result = cli.render(*answers)
    assert result.returncode == 0, result.report()
    assert "ERROR" not in result.output, result.report()
    (project,) = cli.out.iterdir()

    context = cli.replayed_context()
    answered = {p: context[p] for p in BOOLEAN_PROMPTS}
    flags = {p: p in switched_on for p in BOOLEAN_PROMPTS}
    assert answered == flags, "answers were not read as JSON booleans"

    kept, pruned = expected_paths(flags)
    assert all((project / render_path(r, context)).exists() for r in kept)
    assert not any((project / render_path(r, context)).exists() for r in pruned)
