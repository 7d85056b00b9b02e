"""RELIABILITY.md describes each row with its test module's docstring: every module has one."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from support import ROOT


def reliability_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "reliability_script", ROOT / "scripts" / "reliability.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_reliability_module_describes_its_row() -> None:
    script = reliability_script()
    items = script.items()  # exits naming the module whose docstring has no headline
    modules = {path.stem for path in (ROOT / "tests" / "reliability").glob("test_*.py")}
    assert set(items) == modules
    numbers = [item.number for item in items.values()]
    assert len(numbers) == len(set(numbers)), f"two modules claim the same row: {numbers}"
    assert all(item.body for item in items.values()), "a row without its description"
    unknown = set(script.KEY_FIGURES) - modules
    assert not unknown, f"KEY_FIGURES names no test module: {sorted(unknown)}"
