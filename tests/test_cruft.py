"""A project created with cruft knows its template and can tell when it is behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import BIN, ROOT, run

CRUFT = str(BIN / "cruft")
NOT_TEMPLATE = shutil.ignore_patterns(
    ".git", ".venv", ".cache", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"
)


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Template Tests", "-c", "user.email=tests@example.com"]
    result = run(["git", *identity, "-c", "commit.gpgsign=false", *args], cwd=repo, timeout=120)
    assert result.returncode == 0, result.report()
    return result.output.strip()


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """This template, copied and committed to a fresh git repository (cruft needs git)."""
    repo = tmp_path / "template"
    shutil.copytree(ROOT, repo, ignore=NOT_TEMPLATE)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", "template")
    return repo


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(tmp_path / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(tmp_path / 'replay'))}\n",
        encoding="utf-8",
    )
    return config


def test_cruft_create_then_check(template_repo: Path, config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    created = run(
        [
            CRUFT,
            "create",
            str(template_repo),
            "--no-input",
            "--output-dir",
            str(out),
            "--config-file",
            str(config_file),
        ],
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.report()
    (project,) = out.iterdir()
    cruft = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert cruft["template"] == str(template_repo)
    assert cruft["commit"] == git(template_repo, "rev-parse", "HEAD")

    up_to_date = run([CRUFT, "check"], cwd=project)
    assert up_to_date.returncode == 0, up_to_date.report()

    # A new template commit makes the same project report that it is behind.
    readme = template_repo / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    git(template_repo, "commit", "--quiet", "--all", "--message", "change")
    behind = run([CRUFT, "check"], cwd=project)
    assert behind.returncode != 0, (
        "cruft check did not notice the new template commit\n" + behind.tail()
    )
