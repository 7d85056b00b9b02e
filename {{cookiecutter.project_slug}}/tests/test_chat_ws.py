"""WebSocket chat: typed messages, cancel, errors and close codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

CHAT = {"type": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3}


async def receive_until_done(ws: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        message = json.loads(await ws.recv())
        messages.append(message)
        if message["type"] == "done":
            return messages


async def test_chat_streams_typed_messages(live_server: Any) -> None:
    server = await live_server()
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send(json.dumps(CHAT))
        messages = await receive_until_done(ws)
        assert [m["type"] for m in messages] == ["token", "token", "token", "usage", "done"]
        assert "".join(m["text"] for m in messages[:3]) == "hello there hello"
        assert messages[-1]["finish_reason"] == "length"
        # The socket stays open for the next request.
        await ws.send(json.dumps(CHAT))
        assert len(await receive_until_done(ws)) == 5


async def test_cancel_stops_the_generation(live_server: Any) -> None:
    server = await live_server(fake_llm_delay_ms=20)
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send(json.dumps({**CHAT, "max_tokens": 1000}))
        first = json.loads(await ws.recv())
        assert first["type"] == "token"
        await ws.send('{"type": "cancel"}')
        messages = await receive_until_done(ws)
        assert messages[-1] == {"type": "done", "finish_reason": "cancelled"}
        assert len(messages) < 50
        assert server.app.state.wiring.core.provider.active == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_message"),
        ('{"type": "unknown"}', "invalid_message"),
        ('{"type": "chat", "messages": []}', "invalid_message"),
        ('{"type": "cancel"}', "nothing_to_cancel"),
    ],
)
async def test_invalid_messages_get_a_typed_error(live_server: Any, raw: str, code: str) -> None:
    server = await live_server()
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send(raw)
        error = json.loads(await ws.recv())
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["request_id"]
        # Still usable afterwards.
        await ws.send(json.dumps(CHAT))
        assert (await receive_until_done(ws))[-1]["type"] == "done"


async def test_second_chat_while_busy_is_refused(live_server: Any) -> None:
    server = await live_server(fake_llm_delay_ms=20)
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send(json.dumps({**CHAT, "max_tokens": 20}))
        await ws.send(json.dumps(CHAT))
        messages = await receive_until_done(ws)
        assert any(m["type"] == "error" and m["code"] == "busy" for m in messages)


async def test_oversized_message_closes_with_1009(live_server: Any) -> None:
    server = await live_server(ws_max_message_bytes=2048)
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers, max_size=None
    ) as ws:
        await ws.send(json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_binary_frame_closes_with_1003(live_server: Any) -> None:
    server = await live_server()
    async with websockets.connect(
        f"{server.ws_url}/api/v1/chat/ws", additional_headers=server.headers
    ) as ws:
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1003
