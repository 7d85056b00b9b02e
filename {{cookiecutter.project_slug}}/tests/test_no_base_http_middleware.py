"""Every middleware is pure ASGI: nothing may buffer streams or spawn a task per request.

Starlette's HTTP-middleware base class and FastAPI's ``@app.middleware("http")``
decorator both run the app in a separate task and pass the response through a
memory stream, which costs every streamed token an extra hop. This test fails if
either appears in the package's source or in the built middleware stack.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.middleware.base import BaseHTTPMiddleware

from {{cookiecutter.package_name}} import main
from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.middleware.api_key import ApiKeyMiddleware
from {{cookiecutter.package_name}}.middleware.body_limit import BodyLimitMiddleware
from {{cookiecutter.package_name}}.middleware.cors import CORSMiddleware
from {{cookiecutter.package_name}}.middleware.error_boundary import ErrorBoundaryMiddleware
from {{cookiecutter.package_name}}.middleware.rate_limit import RateLimitMiddleware
from {{cookiecutter.package_name}}.middleware.request_id import RequestIdMiddleware
from {{cookiecutter.package_name}}.middleware.security_headers import SecurityHeadersMiddleware

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running

FORBIDDEN = re.compile(r"BaseHTTPMiddleware|\.middleware\(\s*['\"]http['\"]\s*\)")
EXPECTED_ORDER = [
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    BodyLimitMiddleware,
    CORSMiddleware,
    ApiKeyMiddleware,
    RateLimitMiddleware,
    ErrorBoundaryMiddleware,
]


def forbidden_uses(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]


def test_the_package_source_never_uses_them() -> None:
    root = Path(main.__file__).parent
    assert len(list(root.rglob("*.py"))) > 20
    assert forbidden_uses(root) == []


@pytest.mark.parametrize(
    "source",
    [
        "class Timing(BaseHTTPMiddleware):",
        "from starlette.middleware.base import BaseHTTPMiddleware",
        '@app.middleware("http")',
        "@app.middleware( 'http' )",
    ],
)
def test_the_scan_catches_them(tmp_path: Path, source: str) -> None:
    (tmp_path / "module.py").write_text(f"{source}\n", encoding="utf-8")
    assert len(forbidden_uses(tmp_path)) == 1


def test_registered_middleware_is_pure_asgi_in_order(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings())
    classes: list[Any] = [entry.cls for entry in app.user_middleware]
    # Features may add authentication layers (Wiring.auth_layers) between these.
    assert [cls for cls in classes if cls in EXPECTED_ORDER] == EXPECTED_ORDER
    for cls in classes:
        assert isinstance(cls, type)
        assert not issubclass(cls, BaseHTTPMiddleware)
        assert inspect.iscoroutinefunction(cls.__call__)
        parameters = list(inspect.signature(cls.__call__).parameters)
        assert parameters == ["self", "scope", "receive", "send"]


async def test_built_stack_holds_no_base_http_middleware(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings())
    async with running(app) as http:
        assert (await http.get("/healthz")).status_code == 200
    layers: list[Any] = []
    layer: Any = app.middleware_stack
    while layer is not None and layer is not app.router:
        layers.append(layer)
        layer = getattr(layer, "app", None)
    assert not [layer for layer in layers if isinstance(layer, BaseHTTPMiddleware)]
    ours = [type(layer) for layer in layers if type(layer) in EXPECTED_ORDER]
    assert ours == EXPECTED_ORDER
