"""The shared test environment (this repo's pyproject.toml) covers every variant.

``scripts/test.py`` installs ``[project.optional-dependencies].test`` once and runs
every rendered project's checks with it, so a distribution that a variant needs but
that list lacks would only show up as a confusing import error somewhere else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from support import requirement_name, template_test_requirements, variant_params


@pytest.mark.parametrize("variant", variant_params())
def test_test_env_has_every_dependency_of_the_variant(project: Path) -> None:
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    declared: list[str] = list(data.get("project", {}).get("dependencies", []))
    for extra in data.get("project", {}).get("optional-dependencies", {}).values():
        declared += extra
    for group in data.get("dependency-groups", {}).values():
        declared += [r for r in group if isinstance(r, str)]
    missing = sorted({requirement_name(r) for r in declared} - template_test_requirements())
    assert not missing, (
        "add these to [project.optional-dependencies].test in the template repo's "
        f"pyproject.toml: {', '.join(missing)}"
    )
