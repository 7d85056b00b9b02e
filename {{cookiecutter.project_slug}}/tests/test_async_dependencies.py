"""Routes on the request path use only async dependencies.

FastAPI runs a plain ``def`` dependency in the thread pool; on a JSON route that
hand-off cost more than everything else together, so it must not come back.
"""

from __future__ import annotations

import inspect

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from {{cookiecutter.package_name}}.main import create_app

from conftest import SettingsFactory

# Routes that may block on purpose (password hashing runs in a thread anyway).
ALLOWED_SYNC = {"/api/v1/auth/token"}


def sync_calls(dependant: Dependant) -> list[str]:
    found = []
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and not (
            inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
        ):
            found.append(getattr(call, "__qualname__", repr(call)))
        found.extend(sync_calls(sub))
    return found


def test_no_sync_dependencies_on_the_request_path(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings())
    offenders = {}
    checked = 0
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, APIRoute | APIWebSocketRoute) and path not in ALLOWED_SYNC:
            checked += 1
            calls = sync_calls(route.dependant)
            if calls:
                offenders[path] = calls
    assert checked >= 6
    assert offenders == {}
