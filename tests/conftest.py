"""Fixtures: one render per variant and per xdist worker, shared by that variant's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import RenderCache, Rendered, Variant


@pytest.fixture(scope="session")
def renders(cookies_session: Any) -> RenderCache:
    return RenderCache(cookies_session)


@pytest.fixture
def rendered(variant: Variant, renders: RenderCache) -> Rendered:
    """The variant under test, rendered once (the first test of the variant pays for it)."""
    return renders.get(variant)


@pytest.fixture
def project(rendered: Rendered) -> Path:
    """The rendered project's folder; fails the test when the variant did not render."""
    if not rendered.ok or rendered.project is None:
        pytest.fail(
            f"variant {rendered.variant.id} did not render "
            f"(exit code {rendered.exit_code}): {rendered.exception!r}",
            pytrace=False,
        )
    return rendered.project
