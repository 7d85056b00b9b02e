"""The template rendered as a user renders it, once per set of answers, and the project it gives.

Rendering runs ``python -m cookiecutter --no-input`` in a subprocess with a config
file of its own, so neither the user's ``~/.cookiecutterrc`` nor their replay folder
takes part, and the hooks' own words (an ``ERROR:`` line on stderr) are kept for the
message when a render fails.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[2]
RENDER_TIMEOUT = 300  # seconds


def answer(value: Any) -> str:
    """A ``key=value`` answer as cookiecutter's command line takes it (JSON booleans as yes/no)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass
class Rendered:
    """One ``cookiecutter --no-input`` run and a snapshot of the tree taken right after it."""

    answers: dict[str, Any]
    exit_code: int
    output: str = field(repr=False)  # cookiecutter's and the hooks' stdout and stderr
    context: dict[str, Any] = field(default_factory=dict)  # every variable, as rendered
    project: Path | None = None
    files: list[Path] = field(default_factory=list)  # relative to project
    empty_dirs: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.project is not None

    @property
    def error(self) -> str:
        """Why the render failed: the hook's ``ERROR:`` line, else the output's last line."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        errors = [line for line in lines if "ERROR" in line]
        if errors:
            return errors[0]
        return lines[-1] if lines else f"exit code {self.exit_code}, no output"

    def text_files(self) -> list[tuple[Path, str]]:
        """(relative path, text) of every non-binary file."""
        assert self.project is not None
        out = []
        for rel in self.files:
            data = (self.project / rel).read_bytes()
            if b"\0" not in data:
                out.append((rel, data.decode("utf-8", errors="replace")))
        return out


def render(answers: Mapping[str, Any], out: Path, template: Path = TEMPLATE) -> Rendered:
    """Render ``template`` with ``answers`` into the empty folder ``out``."""
    output_dir = out / "out"
    replay_dir = out / "replay"
    output_dir.mkdir(parents=True, exist_ok=True)
    config = out / "cookiecutter.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(out / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(replay_dir))}\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(config)]
    command += ["-o", str(output_dir), str(template)]
    command += [f"{key}={answer(value)}" for key, value in answers.items()]
    done = subprocess.run(
        command,
        cwd=out,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=RENDER_TIMEOUT,
        check=False,
    )
    rendered = Rendered(answers=dict(answers), exit_code=done.returncode, output=done.stdout)
    # cookiecutter writes what it rendered with to the replay folder, defaults included.
    for replay in replay_dir.glob("*.json"):
        rendered.context = dict(json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"])
    projects = [p for p in output_dir.iterdir() if p.is_dir()]
    if done.returncode == 0 and len(projects) == 1:
        project = rendered.project = projects[0]
        tree = list(project.rglob("*"))
        rendered.files = sorted(p.relative_to(project) for p in tree if not p.is_dir())
        rendered.empty_dirs = sorted(
            p.relative_to(project) for p in tree if p.is_dir() and not any(p.iterdir())
        )
    return rendered


class RenderCache:
    """Renders each set of answers at most once per process, in folders under ``root``."""

    def __init__(self, root: Path, template: Path = TEMPLATE) -> None:
        self.root = root
        self.template = template
        self._done: dict[tuple[tuple[str, str], ...], Rendered] = {}

    def get(self, answers: Mapping[str, Any]) -> Rendered:
        key = tuple(sorted((k, answer(v)) for k, v in answers.items()))
        if key not in self._done:
            name = "-".join(f"{k}={v}" for k, v in key) or "default"
            self._done[key] = render(answers, self.root / name, self.template)
        return self._done[key]


@dataclass
class Project:
    """A rendered project on disk, and the answers it was rendered with."""

    path: Path
    answers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def package(self) -> str:
        found = [p.name for p in (self.path / "src").iterdir() if (p / "__init__.py").is_file()]
        assert len(found) == 1, f"expected one package under src/, found {found}"
        return found[0]

    @property
    def src(self) -> Path:
        return self.path / "src"

    @property
    def package_dir(self) -> Path:
        return self.src / self.package

    @property
    def tests(self) -> Path:
        return self.path / "tests"

    @property
    def app_factory(self) -> str:
        """What uvicorn serves (with ``--factory``): the function that builds the service."""
        return f"{self.package}.main:create_app"

    def has(self, feature: str) -> bool:
        return bool(self.answers.get(f"use_{feature}", False))

    def env_example(self) -> dict[str, str]:
        """Every ``NAME=value`` of the rendered ``.env.example``."""
        values: dict[str, str] = {}
        for line in (self.path / ".env.example").read_text(encoding="utf-8").splitlines():
            match = re.match(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip())
            if match:
                values[match.group(1)] = match.group(2).strip().strip('"')
        return values

    def import_file(self, relative: str, name: str) -> ModuleType:
        """A standalone file of the project (test helper, generated stubs) as a module."""
        path = self.path / relative
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None, path
        assert spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # Its sibling helpers (a test helper may import tests/threaded_server.py).
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        return module
