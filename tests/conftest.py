"""Fixtures: one render per variant and per xdist worker, shared by that variant's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.render import RenderCache, Rendered
from support import Variant


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> RenderCache:
    return RenderCache(tmp_path_factory.mktemp("renders"))


@pytest.fixture
def rendered(variant: Variant, renders: RenderCache) -> Rendered:
    """The variant under test, rendered once (the first test of the variant pays for it)."""
    return renders.get(variant.context)


@pytest.fixture
def project(variant: Variant, rendered: Rendered) -> Path:
    """The rendered project's folder; fails the test when the variant did not render."""
    if not rendered.ok or rendered.project is None:
        pytest.fail(
            f"variant {variant.id} did not render "
            f"(exit code {rendered.exit_code}): {rendered.error}",
            pytrace=False,
        )
    return rendered.project
