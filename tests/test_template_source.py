"""Rules about the template's service source itself, checked without rendering."""

from __future__ import annotations

import pytest
from support import TEMPLATE_PROJECT

# Everything the service ships except its tests: its own guard test has to name
# what it forbids.
PY_FILES = sorted(
    path
    for path in TEMPLATE_PROJECT.rglob("*.py")
    if path.relative_to(TEMPLATE_PROJECT).parts[0] != "tests"
)

# BaseHTTPMiddleware (and @app.middleware, built on it) runs the app in another task
# and pipes the response through a memory stream: streams lose their direct path to
# the client. The service uses pure ASGI middleware only.
FORBIDDEN = ("BaseHTTPMiddleware", "@app.middleware(")


@pytest.mark.parametrize("forbidden", FORBIDDEN)
def test_no_starlette_http_middleware(forbidden: str) -> None:
    assert PY_FILES, f"no .py files under {TEMPLATE_PROJECT}"
    hits = [
        f"{path.relative_to(TEMPLATE_PROJECT)}:{n}: {line.strip()}"
        for path in PY_FILES
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if forbidden in line
    ]
    assert not hits, f"{forbidden} found (write pure ASGI middleware):\n  " + "\n  ".join(hits)
