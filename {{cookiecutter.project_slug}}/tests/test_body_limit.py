"""Request bodies over MAX_REQUEST_SIZE are refused, declared or chunked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from {{cookiecutter.package_name}}.main import create_app

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from stack_helpers import (
    add_test_routes,
    assert_error_shape,
    assert_security_headers,
    http_client,
    serving,
)

LIMIT = 2048


async def chunks(sizes: list[int]) -> AsyncIterator[bytes]:
    for size in sizes:
        yield b"x" * size


async def test_declared_length_over_the_limit_is_refused_unread(
    make_settings: SettingsFactory,
) -> None:
    app = add_test_routes(create_app(make_settings(max_request_size=LIMIT)))
    async with running(app) as http:
        response = await http.post("/api/v1/test/sink", content=b"x" * (LIMIT + 1))
    assert_error_shape(response, 413, "request_too_large")
    assert_security_headers(response)
    # The route never ran, so not a byte was read.
    assert app.state.sink_seen is None


async def test_body_exactly_at_the_limit_passes(make_settings: SettingsFactory) -> None:
    app = add_test_routes(create_app(make_settings(max_request_size=LIMIT)))
    async with running(app) as http:
        response = await http.post("/api/v1/test/sink", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"bytes": LIMIT}


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1_0", " ", "99999999999999999999999"])
async def test_invalid_content_length_is_a_400(make_settings: SettingsFactory, value: str) -> None:
    app = add_test_routes(create_app(make_settings(max_request_size=LIMIT)))
    async with running(app) as http:
        response = await http.post(
            "/api/v1/test/sink", content=b"xy", headers={"Content-Length": value}
        )
    assert_error_shape(response, 400, "bad_request")
    assert app.state.sink_seen is None


async def test_chunked_body_is_cut_at_the_limit(make_settings: SettingsFactory) -> None:
    app = add_test_routes(create_app(make_settings(max_request_size=LIMIT)))
    async with serving(app) as server, http_client(server.url, headers=server.headers) as http:
        response = await http.post("/api/v1/test/sink", content=chunks([1024, 1024, 1024]))
        assert_error_shape(response, 413, "request_too_large")
        assert_security_headers(response)
        assert "content-length" not in response.request.headers
        # The app read up to the limit and never saw the chunk that crossed it.
        assert app.state.sink_seen is not None
        assert app.state.sink_seen <= LIMIT


async def test_chunked_body_within_the_limit_passes(make_settings: SettingsFactory) -> None:
    app = add_test_routes(create_app(make_settings(max_request_size=LIMIT)))
    async with serving(app) as server, http_client(server.url, headers=server.headers) as http:
        response = await http.post("/api/v1/test/sink", content=chunks([1000, 1000, 48]))
        assert response.status_code == 200
        assert response.json() == {"bytes": LIMIT}


async def test_real_routes_are_protected(live_server: Any) -> None:
    server = await live_server(max_request_size=LIMIT)
    async with http_client(server.url, headers=server.headers) as http:
        response = await http.post("/api/v1/chat/stream", content=chunks([1500, 1500]))
    assert_error_shape(response, 413, "request_too_large")
