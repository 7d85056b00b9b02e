"""Every combination of the yes/no prompts, rendered and checked like a real project.

Each test below runs once per variant (ids such as ``redis-nojwt-grpc-nographql``).
A variant is rendered once per xdist worker and all of its tests share that render;
``xdist_group`` keeps them on the same worker. The files each feature owns come from
the template's ``features.toml``, never from this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness.render import Rendered
from support import (
    PYTHON,
    TEMPLATE_PROJECT,
    expected_paths,
    imported_names,
    python_modules,
    render_path,
    run,
    unrendered_lines,
    variant_params,
    worker_cache_dir,
)

pytestmark = pytest.mark.parametrize("variant", variant_params())


def listing(items: list[str]) -> str:
    return "\n  " + "\n  ".join(items)


# --------------------------------------------------------------------------- structure


def test_renders(rendered: Rendered) -> None:
    assert rendered.exit_code == 0, f"rendering failed: {rendered.error}\n{rendered.output[-3000:]}"
    assert rendered.project is not None
    assert rendered.project.is_dir()


def test_enabled_feature_files_present(rendered: Rendered, project: Path) -> None:
    kept, _ = expected_paths(rendered.answers)
    missing = [
        p for p in (render_path(r, rendered.context) for r in kept) if not (project / p).exists()
    ]
    assert not missing, "files of enabled features are missing:" + listing(missing)


def test_disabled_feature_paths_absent(rendered: Rendered, project: Path) -> None:
    _, pruned = expected_paths(rendered.answers)
    left = [p for p in (render_path(r, rendered.context) for r in pruned) if (project / p).exists()]
    assert not left, "paths of disabled features are still there:" + listing(left)


def test_no_manifest_left(project: Path) -> None:
    assert not (project / "features.toml").exists()


def test_no_unrendered_template_text(rendered: Rendered, project: Path) -> None:
    hits = [hit for rel, text in rendered.text_files() for hit in unrendered_lines(rel, text)]
    assert not hits, "template syntax left in the rendered project:" + listing(hits)


def test_no_empty_files(rendered: Rendered, project: Path) -> None:
    empty = [str(rel) for rel in rendered.files if (project / rel).stat().st_size == 0]
    assert not empty, "empty files:" + listing(empty)


def test_no_empty_dirs(rendered: Rendered, project: Path) -> None:
    assert not rendered.empty_dirs, "empty folders:" + listing(
        [str(d) for d in rendered.empty_dirs]
    )


def test_no_import_of_pruned_module(rendered: Rendered, project: Path) -> None:
    _, pruned = expected_paths(rendered.answers)
    modules = {
        name
        for raw in pruned
        if (
            name := python_modules(
                render_path(raw, rendered.context), (TEMPLATE_PROJECT / raw).is_dir()
            )
        )
    }
    if not modules:
        return
    hits = []
    for rel in rendered.files:
        if rel.suffix != ".py":
            continue
        source = (project / rel).read_text(encoding="utf-8")
        try:
            names = imported_names(source, rel)
        except SyntaxError as error:
            hits.append(f"{rel}: cannot be parsed: {error}")
            continue
        for line, name in names:
            gone = next((m for m in modules if name == m or name.startswith(m + ".")), None)
            if gone:
                hits.append(f"{rel}:{line}: uses {name} (pruned module {gone})")
    assert not hits, "remaining code imports pruned modules:" + listing(hits)


BARE_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?!\[)")


def test_no_ignore_missing_imports(rendered: Rendered, project: Path) -> None:
    hits = [
        f"{rel}:{n}: {line.strip()}"
        for rel, text in rendered.text_files()
        for n, line in enumerate(text.splitlines(), start=1)
        if "ignore_missing_imports" in line
    ]
    assert not hits, "mypy's ignore_missing_imports hides missing stubs:" + listing(hits)


def test_no_bare_type_ignore(rendered: Rendered, project: Path) -> None:
    hits = [
        f"{rel}:{n}: {line.strip()}"
        for rel, text in rendered.text_files()
        for n, line in enumerate(text.splitlines(), start=1)
        if BARE_TYPE_IGNORE.search(line)
    ]
    assert not hits, "`# type: ignore` without an error code:" + listing(hits)


# ------------------------------------------------------------------ the project's own tools


def test_ruff_check(project: Path) -> None:
    result = run([PYTHON, "-m", "ruff", "check", "--no-cache", "."], cwd=project)
    assert result.returncode == 0, result.report()


def test_ruff_format(project: Path) -> None:
    result = run([PYTHON, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=project)
    assert result.returncode == 0, result.report()


def test_mypy(project: Path) -> None:
    cache = worker_cache_dir("mypy")
    result = run([PYTHON, "-m", "mypy", "--cache-dir", str(cache)], cwd=project)
    assert result.returncode == 0, result.report()


def test_import_contracts(project: Path) -> None:
    """The layer contracts in the variant's [tool.importlinter] hold (``lint-imports``)."""
    lint_imports = Path(PYTHON).parent / "lint-imports"
    result = run([str(lint_imports), "--no-cache"], cwd=project, PYTHONPATH=str(project / "src"))
    assert result.returncode == 0, result.report()
    assert "0 broken" in result.output, result.report()


def test_project_test_suite(project: Path) -> None:
    result = run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    assert result.returncode == 0, result.report()
