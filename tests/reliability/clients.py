"""Clients that do exactly what a test says: raw HTTP/1.1 with SSE, WebSocket, gRPC.

The HTTP client is written on asyncio streams rather than httpx so that a test
controls every byte and every moment: stop reading (a stuck reader), shrink the
receive buffer, close or abort the socket before the first token, trickle headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from .harness import API, Project

CHAT_WS = API + "/chat/ws"


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: bool = False

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse_block(block: str) -> SSEEvent | None:
    """One event block (WHATWG rules); ``None`` for a block of comments only."""
    event = SSEEvent()
    data: list[str] = []
    touched = False
    for line in block.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        touched = True
        if name == "event":
            event.event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event.id = value
    if not touched:
        return None
    event.data = "\n".join(data)
    return event


def parse_sse(text: str) -> list[SSEEvent]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        parsed = parse_sse_block(block)
        if parsed is not None:
            events.append(parsed)
    return events


@dataclass
class Head:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class HTTPStream:
    """One request on its own connection, with the response read as the test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.head: Head | None = None
        self._body_done = False

    @classmethod
    async def open(
        cls,
        port: int,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
        content_type: str = "application/json",
    ) -> HTTPStream:
        if json_body is not None:
            body = json.dumps(json_body).encode()
        sock = None
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        if body is not None:
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await writer.drain()
        return cls(reader, writer)

    async def read_head(self) -> Head:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                headers[key] = (
                    f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
                )
        self.head = Head(status, headers)
        return self.head

    async def iter_body(self) -> AsyncIterator[bytes]:
        head = self.head or await self.read_head()
        if head.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                data = await self.reader.readexactly(size + 2)
                yield data[:-2]
        elif "content-length" in head.headers:
            remaining = int(head.headers["content-length"])
            while remaining > 0:
                data = await self.reader.read(min(remaining, 1 << 16))
                if not data:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(data)
                yield data
        else:
            while data := await self.reader.read(1 << 16):
                yield data
        self._body_done = True

    async def read_body(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_body()])

    async def json(self) -> Any:
        return json.loads(await self.read_body())

    async def iter_events(self) -> AsyncIterator[SSEEvent]:
        """SSE events as they arrive; comments (keep-alives) are skipped."""
        buffer = b""
        async for chunk in self.iter_body():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                event = parse_sse_block(block.decode("utf-8"))
                if event is not None:
                    yield event
        if buffer.strip():
            event = parse_sse_block(buffer.decode("utf-8"))
            if event is not None:
                yield event

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    timeout: float = 30,
) -> tuple[Head, bytes]:
    """A whole request and response on a fresh connection."""
    async with asyncio.timeout(timeout):
        stream = await HTTPStream.open(
            port,
            method,
            path,
            body=body,
            json_body=json_body,
            headers=headers,
            content_type=content_type,
        )
        try:
            head = await stream.read_head()
            data = await stream.read_body()
        finally:
            stream.close()
    return head, data


# --------------------------------------------------------------------------- websocket


async def ws_connect(
    port: int, headers: dict[str, str] | None = None, *, max_size: int | None = 1 << 24
) -> ClientConnection:
    return await websockets.connect(
        f"ws://127.0.0.1:{port}{CHAT_WS}",
        additional_headers=headers or {},
        open_timeout=30,
        ping_interval=None,
        close_timeout=5,
        max_size=max_size,
    )


def close_code(connection: ClientConnection) -> int | None:
    """The code of the close frame the server sent (None if it sent none)."""
    received = connection.protocol.close_rcvd
    return received.code if received is not None else None


# --------------------------------------------------------------------------- grpc


class GrpcChat:
    """``streaming.v1.ChatService`` over ``grpc.aio``, from the variant's generated messages.

    Only ``chat_pb2`` is loaded (standalone, by path), so the rendered package is
    never imported into the test process; the call is made by its method path.
    """

    def __init__(self, project: Project, port: int, metadata: tuple[tuple[str, str], ...]) -> None:
        import grpc

        self.grpc = grpc
        self.pb2 = project.import_file(
            f"src/{project.package}/grpc/chat_pb2.py", f"reliability_chat_pb2_{project.variant.id}"
        )
        self.port = port
        self.metadata = metadata
        self.channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        self.stream_chat = self.channel.unary_stream(
            "/streaming.v1.ChatService/StreamChat",
            request_serializer=self.pb2.ChatRequest.SerializeToString,
            response_deserializer=self.pb2.ChatEvent.FromString,
        )

    def chat_request(self, content: str, max_tokens: int) -> Any:
        pb2 = self.pb2
        return pb2.ChatRequest(
            messages=[pb2.Message(role=pb2.ROLE_USER, content=content)], max_tokens=max_tokens
        )

    def stream(self, content: str, max_tokens: int, timeout: float = 60) -> Any:
        return self.stream_chat(
            self.chat_request(content, max_tokens), metadata=self.metadata, timeout=timeout
        )

    async def health(self, service: str = "") -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    async def close(self) -> None:
        await self.channel.close(grace=None)


def grpc_event_kind(event: Any) -> str:
    return str(event.WhichOneof("event"))
