"""WebSocket authentication before accept: subprotocol or header, origins, refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from starlette.types import Message
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from {{cookiecutter.package_name}}.main import create_app

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory
from jwt_helpers import bearer, claims_for, hs_token, now
from stack_helpers import chat_ws_scope, http_client, serving

CHAT = {"type": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 2}
APP_ORIGIN = "https://app.example.com"


def offer(*items: str) -> list[Subprotocol]:
    return [Subprotocol(item) for item in items]


async def chat_once(ws: Any) -> list[str]:
    await ws.send(json.dumps(CHAT))
    kinds: list[str] = []
    while not kinds or kinds[-1] != "done":
        kinds.append(json.loads(await ws.recv())["type"])
    return kinds


async def test_token_as_subprotocol_is_accepted_with_bearer(live_server: Any) -> None:
    server = await live_server()
    url = f"{server.ws_url}/api/v1/chat/ws"
    async with websockets.connect(url, subprotocols=offer("bearer", hs_token()), proxy=None) as ws:
        # Browsers close a socket whose handshake names none of their subprotocols.
        assert ws.subprotocol == "bearer"
        assert await chat_once(ws) == ["token", "token", "usage", "done"]


async def test_the_app_never_sees_the_token(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings())

    @app.websocket("/api/v1/test/subprotocols")
    async def subprotocols(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(websocket.scope["subprotocols"])
        await websocket.close()

    token = hs_token()
    async with serving(app) as server:
        url = f"{server.ws_url}/api/v1/test/subprotocols"
        async with websockets.connect(url, subprotocols=offer("x", "bearer", token)) as ws:
            seen = json.loads(await ws.recv())
        assert seen == ["x", "bearer"]
        assert ws.subprotocol == "bearer"
        # The access log and metrics still know the route the socket matched.
        async with http_client(server.url) as http:
            for _ in range(100):
                metrics = (await http.get("/metrics")).text
                if "/api/v1/test/subprotocols" in metrics:
                    break
                await asyncio.sleep(0.01)
    assert 'route="/api/v1/test/subprotocols",status="101"' in metrics


async def test_token_in_the_authorization_header_works_too(live_server: Any) -> None:
    server = await live_server()
    url = f"{server.ws_url}/api/v1/chat/ws"
    async with websockets.connect(url, additional_headers=bearer(hs_token()), proxy=None) as ws:
        assert ws.subprotocol is None
        assert await chat_once(ws) == ["token", "token", "usage", "done"]


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"subprotocols": offer("bearer")},
        {"subprotocols": offer("bearer", "not.a.token")},
        {"subprotocols": offer("bearer", hs_token(claims_for(exp=now() - 3600)))},
        {"additional_headers": bearer(hs_token(secret="x" * 40))},
    ],
    ids=["none", "empty", "garbage", "expired", "bad-signature"],
)
async def test_refused_before_accept_with_a_401(live_server: Any, credentials: Any) -> None:
    """uvicorn supports the denial-response extension: the refusal is an HTTP 401 with JSON."""
    server = await live_server()
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{server.ws_url}/api/v1/chat/ws", proxy=None, **credentials):
            pass
    response = refused.value.response
    assert response.status_code == 401
    body = json.loads(response.body or b"")
    assert body["code"] == "unauthorized"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_origin_allow_list(live_server: Any) -> None:
    server = await live_server(jwt_ws_allowed_origins=APP_ORIGIN)
    url = f"{server.ws_url}/api/v1/chat/ws"
    token = offer("bearer", hs_token())
    origin = Origin(APP_ORIGIN)
    async with websockets.connect(url, origin=origin, subprotocols=token, proxy=None) as ws:
        assert await chat_once(ws) == ["token", "token", "usage", "done"]
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            url, origin=Origin("https://evil.example"), subprotocols=token, proxy=None
        ):
            pass
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body or b"")["code"] == "forbidden"


async def test_without_the_denial_extension_the_refusal_is_a_1008_close(
    make_settings: SettingsFactory,
) -> None:
    """A server that cannot send an HTTP response to a handshake gets a close before accept."""
    app = create_app(make_settings())
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        await app(chat_ws_scope(), receive, send)
        await app(chat_ws_scope(["bearer", "bad.token.here"]), receive, send)
    assert [message["type"] for message in sent] == ["websocket.close"] * 2
    assert [message["code"] for message in sent] == [1008, 1008]
    assert "bearer token is required" in sent[0]["reason"]
    assert sent[1]["reason"] == "Invalid token."
