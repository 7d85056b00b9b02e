"""GraphQL clients for the tests: httpx for queries and mutations, and a small
graphql-transport-ws client over ``websockets`` for subscriptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from conftest import AUTH_HEADERS
from sse_client import iter_events

PATH = "/api/v1/graphql"
PROTOCOL = Subprotocol("graphql-transport-ws")
RECEIVE_TIMEOUT = 10.0

CHAT_INPUT: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hello there"}],
    "maxTokens": 5,
}
# Paced tokens with no end in sight: a generation that runs until something stops it.
LONG_INPUT: dict[str, Any] = {**CHAT_INPUT, "maxTokens": 4000}
PACED = {"fake_llm_delay_ms": 20}

SERVICE_INFO = "query Info { serviceInfo { name version environment } models { id ownedBy } }"
CHAT_MUTATION = """
mutation Chat($input: ChatInput!) {
  chat(input: $input) {
    text finishReason model
    usage { promptTokens completionTokens totalTokens }
  }
}
"""
CHAT_SUBSCRIPTION = """
subscription Stream($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on TokenEvent { index text }
    ... on UsageEvent { promptTokens completionTokens totalTokens }
    ... on DoneEvent { finishReason }
    ... on ErrorEvent { code message requestId }
  }
}
"""


def auth_payload() -> dict[str, str]:
    """``AUTH_HEADERS`` as ``connection_init`` payload items (lower-case keys)."""
    return {name.lower(): value for name, value in AUTH_HEADERS.items()}


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, dict[str, Any]]:
    """POST one operation; the response and its JSON body."""
    response = await client.post(
        PATH, json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return response, body


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


def error_messages(body: dict[str, Any]) -> str:
    return " | ".join(error["message"] for error in body.get("errors") or [])


async def sse_tokens(client: httpx.AsyncClient, request: dict[str, Any]) -> list[str]:
    """The token texts of the REST SSE stream for the same request (snake_case fields)."""
    tokens: list[str] = []
    async with client.stream("POST", "/api/v1/chat/stream", json=request) as response:
        assert response.status_code == 200
        async for event in iter_events(response):
            if event.event == "token":
                tokens.append(json.loads(event.data)["text"])
    return tokens


class GraphQLSocket:
    """One graphql-transport-ws connection, driven message by message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.ws.recv(), RECEIVE_TIMEOUT)
            )
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send(
            {"type": "connection_init", "payload": auth_payload() if payload is None else payload}
        )
        return await self.receive()

    async def subscribe(
        self, op_id: str, query: str = CHAT_SUBSCRIPTION, variables: dict[str, Any] | None = None
    ) -> None:
        variables = {"input": CHAT_INPUT} if variables is None else variables
        await self.send(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )

    async def complete(self, op_id: str) -> None:
        await self.send({"id": op_id, "type": "complete"})

    async def until_end(self, op_id: str) -> list[dict[str, Any]]:
        """Messages of one operation up to and including its ``complete`` or ``error``."""
        messages = []
        while True:
            message = await self.receive()
            assert message.get("id") == op_id, message
            messages.append(message)
            if message["type"] in ("complete", "error"):
                return messages

    async def close_code(self) -> int | None:
        """Wait for the server to close the socket; its close code."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), RECEIVE_TIMEOUT)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


@asynccontextmanager
async def graphql_socket(
    server: Any,
    *,
    headers: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
    init: bool = True,
    subprotocol: Subprotocol = PROTOCOL,
) -> AsyncIterator[GraphQLSocket]:
    """A socket to ``server``, acknowledged unless ``init`` is false.

    Sends ``AUTH_HEADERS`` on the handshake and in the ``connection_init`` payload
    unless told otherwise, so that the tests pass in every variant.
    """
    async with websockets.connect(
        server.ws_url + PATH,
        subprotocols=[subprotocol],
        additional_headers=server.headers if headers is None else headers,
        open_timeout=RECEIVE_TIMEOUT,
    ) as ws:
        socket = GraphQLSocket(ws)
        if init:
            ack = await socket.init(payload)
            assert ack == {"type": "connection_ack"}, ack
        yield socket


def events_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``chatStream`` events of a subscription's ``next`` messages."""
    return [
        message["payload"]["data"]["chatStream"]
        for message in messages
        if message["type"] == "next" and message["payload"].get("data")
    ]


def token_texts(events: list[dict[str, Any]]) -> list[str]:
    return [event["text"] for event in events if event["__typename"] == "TokenEvent"]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
