"""Unhandled exceptions become a JSON 500 with every header, and never leak internals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from {{cookiecutter.package_name}}.main import create_app

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from stack_helpers import (
    SECRET_DETAIL,
    add_test_routes,
    assert_error_shape,
    assert_security_headers,
    captured_logs,
    http_client,
    serving,
)

APP_ORIGIN = "https://app.example.com"


async def test_exception_becomes_a_json_500_with_headers(make_settings: SettingsFactory) -> None:
    app = add_test_routes(create_app(make_settings(log_format="json", cors_origins=APP_ORIGIN)))
    with captured_logs() as logs:
        async with running(app) as http:
            response = await http.get(
                "/api/v1/test/boom", headers={"X-Request-ID": "boom-1", "Origin": APP_ORIGIN}
            )
            metrics = (await http.get("/metrics")).text
    body = assert_error_shape(response, 500, "internal_error")
    assert body == {
        "code": "internal_error",
        "message": "Internal server error.",
        "request_id": "boom-1",
    }
    assert_security_headers(response)
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    for leak in ("Traceback", "RuntimeError", SECRET_DETAIL, "stack_helpers"):
        assert leak not in response.text
    # The traceback is in the log instead, under the request's ID.
    (error,) = logs.events("unhandled_error")
    assert error["request_id"] == "boom-1"
    assert error["level"] == "error"
    assert "Traceback" in error["exception"]
    assert SECRET_DETAIL in error["exception"]
    (access,) = [line for line in logs.events("request") if line["path"] == "/api/v1/test/boom"]
    assert access["status"] == 500
    assert 'http_errors_total{code="internal_error",status="500"} 1.0' in metrics


async def test_client_leaving_before_the_first_token_is_not_an_error(
    make_settings: SettingsFactory,
) -> None:
    """The route raises ClientDisconnect while waiting: no 500, no error log."""
    settings = make_settings(log_format="json", fake_llm_first_token_delay_ms=2000)
    app = create_app(settings)
    body = {"model": "fake-echo-1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with captured_logs() as logs:
        async with serving(app) as server, http_client(server.url, headers=server.headers) as http:
            request = asyncio.create_task(http.post("/api/v1/chat/completions", json=body))
            await asyncio.sleep(0.2)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            for _ in range(200):
                if logs.events("request"):
                    break
                await asyncio.sleep(0.01)
    (access,) = logs.events("request")
    assert access["status"] == 499
    assert not [line for line in logs.lines if line["level"] == "error"]
    assert server.app.state.wiring.core.provider.active == 0


async def test_exception_after_the_response_started_ends_it_quietly(
    make_settings: SettingsFactory,
) -> None:
    app = add_test_routes(create_app(make_settings(log_format="json")))
    with captured_logs() as logs:
        async with (
            serving(app) as server,
            http_client(server.url, headers=server.headers) as http,
            http.stream("GET", "/api/v1/test/boom-mid-stream") as response,
        ):
            assert response.status_code == 200
            received = b""
            with pytest.raises(httpx.RemoteProtocolError):
                async for chunk in response.aiter_bytes():
                    received += chunk
    assert received == b"first chunk\n"
    (error,) = logs.events("unhandled_error.after_response_started")
    assert SECRET_DETAIL in error["exception"]
    assert error["request_id"] == response.headers["x-request-id"]


async def test_websocket_exception_before_accept_is_a_json_500(
    make_settings: SettingsFactory,
) -> None:
    app = add_test_routes(create_app(make_settings(log_format="json")))
    with captured_logs() as logs:
        async with serving(app) as server:
            url = f"{server.ws_url}/api/v1/test/ws-boom"
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(url, additional_headers=server.headers, proxy=None):
                    pass
    response = refused.value.response
    assert response.status_code == 500
    body: dict[str, Any] = json.loads(response.body or b"")
    assert body["code"] == "internal_error"
    assert SECRET_DETAIL not in (response.body or b"").decode()
    assert response.headers["x-frame-options"] == "DENY"
    (error,) = logs.events("unhandled_error")
    assert error["request_id"] == body["request_id"]
