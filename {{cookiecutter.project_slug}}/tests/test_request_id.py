"""Request IDs end to end, the access log and the request metrics."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import structlog
import websockets

from {{cookiecutter.package_name}}.main import create_app

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from stack_helpers import CHAT, add_test_routes, captured_logs, http_client, serving


def is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


@pytest.mark.parametrize("incoming", ["abc-123", "req.2024:01_x", "A" * 128])
async def test_well_formed_id_round_trips(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/no/such/page", headers={"X-Request-ID": incoming})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == incoming
    assert response.json()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming", ["has space", "A" * 129, "<script>", "", "semi;colon", "ünïcode"]
)
async def test_malformed_id_is_replaced_not_echoed(
    client: httpx.AsyncClient, incoming: str
) -> None:
    response = await client.get("/no/such/page", headers=[(b"X-Request-ID", incoming.encode())])
    assigned = response.headers["x-request-id"]
    assert assigned != incoming
    assert is_uuid4(assigned)
    assert response.json()["request_id"] == assigned


async def test_an_id_is_made_when_none_is_sent(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert is_uuid4(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_id_in_scope_state_logs_and_access_line(make_settings: SettingsFactory) -> None:
    app = add_test_routes(create_app(make_settings(log_format="json")))
    with captured_logs() as logs:
        async with running(app) as http:
            response = await http.get(
                "/api/v1/test/whoami?x=1", headers={"X-Request-ID": "trace-me-1"}
            )
    assert response.json()["request_id"] == "trace-me-1"
    # A line logged by the route through the standard library carries the ID.
    (route_line,) = [line for line in logs.lines if line.get("event") == "inside the route"]
    assert route_line["request_id"] == "trace-me-1"
    (access,) = logs.events("request")
    assert access["request_id"] == "trace-me-1"
    assert access["method"] == "GET"
    assert access["path"] == "/api/v1/test/whoami"
    assert access["route"] == "/api/v1/test/whoami"
    assert access["status"] == 200
    assert access["client_ip"] == "127.0.0.1"
    # Whoever the test client's default credentials name, if anyone.
    assert access["principal"] == response.json()["principal"]
    assert access["duration_ms"] >= 0
    # Nothing stays bound once the request is over.
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_access_line_uses_the_route_template(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(log_format="json"))

    @app.get("/api/v1/test/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    with captured_logs() as logs:
        async with running(app) as http:
            await http.get("/api/v1/test/items/42")
            await http.get("/api/v1/models")
            await http.get("/unknown/path")
    found, included, missing = logs.events("request")
    assert (found["path"], found["route"]) == (
        "/api/v1/test/items/42",
        "/api/v1/test/items/{item_id}",
    )
    # A route of the included v1 router gets its prefix back.
    assert included["route"] == "/api/v1/models"
    assert (missing["route"], missing["status"]) == ("/unknown/path", 404)


async def test_a_stream_is_logged_once_when_it_ends(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(log_format="json", fake_llm_delay_ms=5))
    with captured_logs() as logs:
        async with serving(app) as server, http_client(server.url, headers=server.headers) as http:
            body = {**CHAT, "max_tokens": 10}
            async with http.stream("POST", "/api/v1/chat/stream", json=body) as response:
                request_id = response.headers["x-request-id"]
                chunks = response.aiter_bytes()
                await anext(chunks)
                # The stream is under way: not logged yet.
                assert logs.events("request") == []
                async for _ in chunks:
                    pass
            # The server logs just after the last byte; give it a moment.
            for _ in range(100):
                if logs.events("request"):
                    break
                await asyncio.sleep(0.005)
    (access,) = logs.events("request")
    assert access["request_id"] == request_id
    assert (access["status"], access["route"]) == (200, "/api/v1/chat/stream")
    # Ten tokens 5 ms apart: the line was written when the stream ended, not at its start.
    assert access["duration_ms"] >= 40


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
async def test_per_request_lines_follow_the_log_level(
    make_settings: SettingsFactory, level: str
) -> None:
    # The access line and the generation line are INFO: below LOG_LEVEL neither is written.
    app = create_app(make_settings(log_format="json", log_level=level))
    with captured_logs() as logs:
        async with running(app) as http:
            response = await http.post("/api/v1/chat/stream", json={**CHAT, "max_tokens": 3})
    assert response.status_code == 200
    written = 1 if level == "INFO" else 0
    assert len(logs.events("request")) == written
    generations = logs.events("generation.end")
    assert len(generations) == written
    for line in generations:
        assert (line["transport"], line["tokens"], line["finish_reason"]) == ("sse", 3, "length")
        assert line["request_id"] == response.headers["x-request-id"]


async def test_metrics_count_requests_and_errors(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/models")
    await client.get("/nope-1")
    await client.get("/nope-2")
    await client.post("/api/v1/chat/stream", json={})
    text = (await client.get("/metrics")).text
    assert 'http_errors_total{code="not_found",status="404"} 2.0' in text
    assert 'http_errors_total{code="validation_error",status="422"} 1.0' in text
    assert (
        'http_request_duration_seconds_count{method="GET",route="/api/v1/models",status="200"} 1.0'
        in text
    )
    # Unmatched paths share one series instead of one per URL.
    assert 'route="<unmatched>",status="404"} 2.0' in text
    assert "/nope-1" not in text


async def test_websocket_gets_an_id(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(log_format="json"))
    with captured_logs() as logs:
        async with serving(app) as server:
            async with websockets.connect(
                f"{server.ws_url}/api/v1/chat/ws",
                additional_headers={"X-Request-ID": "ws-trace-7", **server.headers},
                proxy=None,
            ) as ws:
                assert ws.response is not None
                assert ws.response.headers["x-request-id"] == "ws-trace-7"
            async with websockets.connect(
                f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers, proxy=None
            ) as ws:
                assert ws.response is not None
                assert is_uuid4(ws.response.headers["x-request-id"])
    # uvicorn's own lines went through the same formatter, minus their ANSI copy.
    assert [line for line in logs.lines if line["logger"] == "uvicorn.error"]
    assert not [line for line in logs.lines if "color_message" in line]
    lines: list[dict[str, Any]] = logs.events("request")
    assert [(line["method"], line["status"]) for line in lines] == [("WEBSOCKET", 101)] * 2
    assert lines[0]["request_id"] == "ws-trace-7"
