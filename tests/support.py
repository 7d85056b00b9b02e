"""What the template's tests share: the variant table, the manifest, scanning, tools.

Rendering, servers and Redis live in the ``harness`` package, which bench/ uses too.
"""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tokenize
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PROJECT = ROOT / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
MANIFEST_FILE = TEMPLATE_PROJECT / "features.toml"
MANIFEST: dict[str, Any] = tomllib.loads(MANIFEST_FILE.read_text(encoding="utf-8"))
FEATURES: dict[str, dict[str, Any]] = MANIFEST.get("features", {})

# Every yes/no prompt of cookiecutter.json (JSON booleans), in prompt order.
BOOLEAN_PROMPTS: tuple[str, ...] = tuple(
    key for key, value in COOKIECUTTER_JSON.items() if isinstance(value, bool)
)

# The interpreter running the tests is the one with every tool and dependency.
PYTHON = sys.executable
BIN = Path(sys.executable).parent
TOOL_TIMEOUT = 600  # seconds for one ruff, mypy or inner pytest run
OUTPUT_TAIL = 80  # lines of a failing tool's output shown in the assertion


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One combination of the yes/no prompts, e.g. ``redis-nojwt-grpc-nographql``."""

    flags: tuple[tuple[str, bool], ...]

    @property
    def id(self) -> str:
        return "-".join(
            (name if on else f"no{name}")
            for name, on in ((p.removeprefix("use_"), v) for p, v in self.flags)
        )

    @property
    def context(self) -> dict[str, bool]:
        return dict(self.flags)

    def __str__(self) -> str:
        return self.id


VARIANTS: tuple[Variant, ...] = tuple(
    Variant(tuple(zip(BOOLEAN_PROMPTS, values, strict=True)))
    for values in itertools.product((True, False), repeat=len(BOOLEAN_PROMPTS))
)


def variant_params() -> list[Any]:
    """Each variant as a parameter with a readable id, all of its tests on one xdist worker."""
    return [pytest.param(v, id=v.id, marks=pytest.mark.xdist_group(v.id)) for v in VARIANTS]


# --------------------------------------------------------------------------- manifest

PLACEHOLDER = re.compile(r"\{\{\s*cookiecutter\.(\w+)\s*\}\}")


def render_path(raw: str, context: dict[str, Any]) -> str:
    """``src/{{cookiecutter.package_name}}/grpc`` -> ``src/streaming_service/grpc``."""
    return PLACEHOLDER.sub(lambda m: str(context[m.group(1)]), raw)


def path_owners() -> dict[str, list[str]]:
    """Manifest path (unrendered) -> the prompts of every feature that lists it."""
    owners: dict[str, list[str]] = {}
    for feature in FEATURES.values():
        for raw in feature.get("paths", []):
            owners.setdefault(raw, []).append(feature["prompt"])
    return owners


def expected_paths(flags: dict[str, bool]) -> tuple[list[str], list[str]]:
    """(kept, pruned) unrendered manifest paths: a path stays only when all its owners are on."""
    kept: list[str] = []
    pruned: list[str] = []
    for raw, prompts in sorted(path_owners().items()):
        (kept if all(flags[p] for p in prompts) else pruned).append(raw)
    return kept, pruned


# --------------------------------------------------------------------------- scanning


def python_modules(rel: str, is_package: bool) -> str | None:
    """Dotted module name of a project path on the import path (``src/`` or ``tests/``)."""
    parts = Path(rel).parts
    if len(parts) < 2 or parts[0] not in ("src", "tests"):
        return None
    parts = parts[1:]
    if not is_package:
        if not parts[-1].endswith(".py"):
            return None
        parts = (*parts[:-1], parts[-1].removesuffix(".py"))
        if parts[-1] == "__init__":
            parts = parts[:-1]
    return ".".join(parts) or None


def module_of_file(rel: Path) -> tuple[str, bool] | None:
    """(dotted name, is a package __init__) of a .py file under src/ or tests/."""
    name = python_modules(str(rel), is_package=False)
    return (name, rel.name == "__init__.py") if name else None


def imported_names(source: str, rel: Path) -> list[tuple[int, str]]:
    """(line, fully qualified name) of everything a module imports or names as a dotted string."""
    tree = ast.parse(source, filename=str(rel))
    own = module_of_file(rel)
    package: list[str] = []
    if own:
        package = own[0].split(".") if own[1] else own[0].split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package) - (node.level - 1)
                base = ".".join([*package[: max(keep, 0)], *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"[A-Za-z_][\w.]*(:[\w.]+)?", node.value)
        ):
            # "pkg.grpc.server:app" handed to uvicorn, importlib.import_module("pkg.grpc")...
            found.append((node.lineno, node.value.split(":")[0]))
    return found


UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|cookiecutter\.[A-Za-z_]")


def fstring_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Start/end positions of f-strings, where ``{{`` is an escaped brace, not Jinja."""
    spans = []
    stack: list[tuple[int, int]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = tokenize.tok_name[tok.type]
            if kind == "FSTRING_START":  # Python 3.12+
                stack.append(tok.start)
            elif kind == "FSTRING_END" and stack:
                spans.append((stack.pop(), tok.end))
            elif tok.type == tokenize.STRING:
                prefix = tok.string[
                    : min(i for i in (tok.string.find("'"), tok.string.find('"')) if i >= 0)
                ]
                if "f" in prefix.lower():
                    spans.append((tok.start, tok.end))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return []
    return spans


def unrendered_lines(rel: Path, text: str) -> list[str]:
    """``path:line: text`` of every line that still holds template syntax."""
    spans = fstring_spans(text) if rel.suffix == ".py" else []
    hits = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for match in UNRENDERED.finditer(line):
            pos = (lineno, match.start())
            if match.group() == "{{" and any(start <= pos < end for start, end in spans):
                continue
            hits.append(f"{rel}:{lineno}: {line.strip()}")
            break
    return hits


# --------------------------------------------------------------------------- tools


def clean_env() -> dict[str, str]:
    """The environment for tools run on a rendered project: none of the outer pytest's state."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COV_CORE_")) and k not in ("PYTHONPATH", "PYTHONHOME")
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("NO_COLOR", "1")
    return env


@dataclass
class Run:
    command: list[str]
    returncode: int
    output: str = field(repr=False)
    timed_out: bool = False

    def tail(self, lines: int = OUTPUT_TAIL) -> str:
        kept = self.output.rstrip().splitlines()[-lines:]
        return "\n".join(kept)

    def report(self) -> str:
        what = "timed out" if self.timed_out else f"exited {self.returncode}"
        return f"`{' '.join(self.command)}` {what}; last lines of its output:\n{self.tail()}"


def run(command: list[str], cwd: Path, timeout: float = TOOL_TIMEOUT, **env: str) -> Run:
    """Run a command with stdout+stderr together; kill its whole process group on timeout."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env={**clean_env(), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
            return Run(command, proc.returncode, output)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return Run(command, -9, output or "", timed_out=True)


def worker_cache_dir(tool: str) -> Path:
    """A warm cache per tool, per test environment and per xdist worker, in ``.cache/``."""
    env_key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:10]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = ROOT / ".cache" / tool / f"{env_key}-{worker}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a distribution name from {requirement!r}"
    return normalize(match.group(1))


def template_test_requirements() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {requirement_name(r) for r in data["project"]["optional-dependencies"]["test"]}
