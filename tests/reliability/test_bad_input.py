"""Item 7a, bad input catalogue: every malformed request gets a clean 4xx or close code, never 500.

The HTTP cases, on the SSE and the OpenAI routes: malformed JSON, invalid UTF-8, deep
nesting, huge numbers, wrong types, content over 100,000 characters, bodies over
``MAX_REQUEST_SIZE`` with and without Content-Length, NUL, lone surrogates, RTL marks,
257 messages, out-of-range ``max_tokens`` and ``temperature``, wrong method, unknown
route, invalid Content-Length. Each is sent raw to a real server and must be answered
with the expected status and the JSON error schema ``{"code", "message",
"request_id"}`` (the request ID also in ``X-Request-ID``), or on the OpenAI route
OpenAI's ``{"error": {...}}``, a refused body there being a 400; edge cases that are
valid (NUL, RTL marks, emoji) must stream normally. The WebSocket cases (bad JSON, unknown
type, invalid fields, binary frame, oversized, non-UTF-8 text) must get an ``error``
message of the same schema on an open socket, or the right close code: 1003 for a
binary frame, 1009 for an oversized message, 1007 for a text frame that is not UTF-8.
Afterwards the server log must hold no error (no 500 was ever produced, no traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from .clients import Head, HTTPStream, close_code, parse_sse, request, ws_connect
from .conftest import Figures
from .harness import (
    ALL_ON,
    API,
    DEFAULT,
    Deployment,
    Service,
    uvicorn_client_fault,
    variant_params,
)

pytestmark = pytest.mark.parametrize("variant", variant_params("badinput", DEFAULT, ALL_ON))

MAX_REQUEST_SIZE = 1_048_576
MAX_MESSAGE_CHARS = 100_000
WS_MAX_BYTES = 65_536
STREAM = API + "/chat/stream"
COMPLETIONS = API + "/chat/completions"
USER = {"role": "user", "content": "hello"}


def chat(**extra: Any) -> bytes:
    return json.dumps({"messages": [USER], "max_tokens": 4, **extra}).encode()


def openai(stream: bool, **extra: Any) -> bytes:
    body = {"model": "fake-echo-1", "messages": [USER], "max_tokens": 4, "stream": stream, **extra}
    return json.dumps(body).encode()


def with_content(route: str, content: Any, stream: bool = False) -> bytes:
    message = {"role": "user", "content": content}
    if route == STREAM:
        return json.dumps({"messages": [message], "max_tokens": 4}).encode()
    body = {"model": "fake-echo-1", "messages": [message], "max_tokens": 4, "stream": stream}
    return json.dumps(body).encode()


def raw_json(route: str, fragment: str) -> bytes:
    """A body with a hand-written content string (JSON escapes as the client sent them)."""
    if route == STREAM:
        return (
            '{"messages":[{"role":"user","content":"' + fragment + '"}],"max_tokens":4}'
        ).encode()
    return (
        '{"model":"fake-echo-1","messages":[{"role":"user","content":"'
        + fragment
        + '"}],"max_tokens":4}'
    ).encode()


@dataclass
class Case:
    name: str
    path: str
    body: bytes | None
    # The expected status; 200 means "valid edge case: must succeed".
    status: int | tuple[int, ...]
    method: str = "POST"
    content_type: str = "application/json"
    headers: dict[str, str] | None = None
    chunked: bool = False
    # Refused by uvicorn's HTTP parser before the app sees it: its own plain-text 400.
    server_level: bool = False


def catalogue() -> list[Case]:
    cases: list[Case] = []
    big = "x" * (MAX_MESSAGE_CHARS + 1)
    half = "y" * (MAX_MESSAGE_CHARS // 2 + 1)
    for route in (STREAM, COMPLETIONS):
        tag = "stream" if route == STREAM else "completions"
        cases += [
            Case(f"{tag}: malformed JSON", route, b'{"messages": [', 422),
            Case(f"{tag}: invalid UTF-8 body", route, b'"\xff\xfe', (400, 422)),
            Case(f"{tag}: empty body", route, b"", 422),
            Case(f"{tag}: JSON null", route, b"null", 422),
            Case(f"{tag}: JSON array", route, b"[1, 2]", 422),
            Case(f"{tag}: 100k-deep nesting", route, b'{"messages":' + b"[" * 100_000, (400, 422)),
            Case(
                f"{tag}: 5000-digit integer",
                route,
                b'{"messages":[],"max_tokens":' + b"9" * 5000 + b"}",
                (400, 422),
            ),
            Case(
                f"{tag}: messages is a string",
                route,
                json.dumps({"model": "fake-echo-1", "messages": "hello"}).encode(),
                422,
            ),
            Case(
                f"{tag}: messages empty",
                route,
                json.dumps({"model": "fake-echo-1", "messages": []}).encode(),
                422,
            ),
            Case(
                f"{tag}: role unknown",
                route,
                json.dumps(
                    {"model": "fake-echo-1", "messages": [{"role": "wizard", "content": "x"}]}
                ).encode(),
                422,
            ),
            Case(f"{tag}: content is an object", route, with_content(route, {"a": 1}), 422),
            Case(
                f"{tag}: max_tokens not a number",
                route,
                chat(max_tokens="lots") if route == STREAM else openai(False, max_tokens="lots"),
                422,
            ),
            Case(f"{tag}: content over 100,000 chars", route, with_content(route, big), 422),
            Case(
                f"{tag}: 257 messages",
                route,
                json.dumps({"model": "fake-echo-1", "messages": [USER] * 257}).encode(),
                422,
            ),
            Case(
                f"{tag}: body over MAX_REQUEST_SIZE (Content-Length)",
                route,
                with_content(route, "z" * (MAX_REQUEST_SIZE + 10)),
                413,
            ),
            Case(
                f"{tag}: body over MAX_REQUEST_SIZE (chunked)",
                route,
                with_content(route, "z" * (MAX_REQUEST_SIZE + 10)),
                413,
                chunked=True,
            ),
            Case(f"{tag}: lone high surrogate \\ud800", route, raw_json(route, "a\\ud800b"), 422),
            Case(f"{tag}: lone low surrogate \\udc00", route, raw_json(route, "\\udc00"), 422),
            Case(f"{tag}: NUL character", route, raw_json(route, "a\\u0000b"), 200),
            Case(
                f"{tag}: RTL and zero-width marks",
                route,
                raw_json(route, "\\u202e\\u200f\\u200bx"),
                200,
            ),
            Case(
                f"{tag}: surrogate pair (emoji)", route, raw_json(route, "\\ud83d\\ude00 ok"), 200
            ),
            Case(f"{tag}: text/plain content type", route, chat(), 422, content_type="text/plain"),
            Case(f"{tag}: GET", route, None, 405, method="GET"),
        ]
        for value in (-1, 0, 32_769, 10**20):
            body = chat(max_tokens=value) if route == STREAM else openai(False, max_tokens=value)
            cases.append(Case(f"{tag}: max_tokens {value}", route, body, 422))
        for value in ("NaN", "Infinity", "-1", "3"):
            body = (chat() if route == STREAM else openai(False))[
                :-1
            ] + f',"temperature":{value}}}'.encode()
            cases.append(Case(f"{tag}: temperature {value}", route, body, 422))
    cases += [
        Case("stream: unknown field (extra=forbid)", STREAM, chat(brand_new_field=["x"]), 422),
        Case("completions: n=2", COMPLETIONS, openai(False, n=2), 422),
        Case(
            "completions: text parts adding up to over 100,000 chars",
            COMPLETIONS,
            with_content(
                COMPLETIONS, [{"type": "text", "text": half}, {"type": "text", "text": half}]
            ),
            422,
        ),
        Case(
            "completions(stream): content over 100,000 chars",
            COMPLETIONS,
            with_content(COMPLETIONS, big, stream=True),
            422,
        ),
        Case(
            "completions(stream): lone surrogate",
            COMPLETIONS,
            raw_json(COMPLETIONS, "\\ud800")[:-1] + b',"stream":true}',
            422,
        ),
        Case("unknown route", API + "/nope", chat(), 404),
        Case(
            "invalid Content-Length",
            STREAM,
            None,
            400,
            headers={"Content-Length": "+5"},
            server_level=True,
        ),
    ]
    return cases


async def send_case(service: Service, case: Case) -> tuple[int, dict[str, str], bytes]:
    headers = {**service.headers, **(case.headers or {})}
    if case.chunked:
        assert case.body is not None
        step = 65_536
        body = b"".join(
            f"{len(case.body[i : i + step]):x}\r\n".encode() + case.body[i : i + step] + b"\r\n"
            for i in range(0, len(case.body), step)
        )
        headers |= {"Transfer-Encoding": "chunked", "Content-Type": case.content_type}
        head, data = await raw_request(
            service.port, case.method, case.path, headers, body + b"0\r\n\r\n"
        )
    elif case.headers:
        # The case sets the framing headers itself: send them exactly as they are.
        headers["Content-Type"] = case.content_type
        head, data = await raw_request(service.port, case.method, case.path, headers, b"{}{}{}")
    else:
        head, data = await request(
            service.port,
            case.method,
            case.path,
            body=case.body,
            headers=headers,
            content_type=case.content_type,
        )
    return head.status, head.headers, data


async def raw_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[Head, bytes]:
    """A request whose framing headers are exactly ``headers`` (no Content-Length added)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    stream = HTTPStream(reader, writer)
    try:
        async with asyncio.timeout(30):
            # The server may answer (413) before it has read the whole body.
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            head = await stream.read_head()
            data = await stream.read_body()
    finally:
        stream.close()
    return head, data


def judge(case: Case, status: int, headers: dict[str, str], data: bytes) -> str | None:
    """What is wrong with the answer to ``case``, or None."""
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    # The OpenAI-compatible route speaks OpenAI's errors: a refused body is a 400.
    openai_route = case.path == COMPLETIONS
    if openai_route:
        expected = tuple(400 if code == 422 else code for code in expected)
    if status == 500 or status not in expected:
        return f"status {status} (expected {'/'.join(map(str, expected))}): {data[:200]!r}"
    if status == 200:
        if case.path == STREAM or b'"stream":true' in (case.body or b""):
            events = parse_sse(data.decode())
            if not events or events[-1].event not in ("done", "message"):
                return f"stream did not end properly: {data[-200:]!r}"
        return None
    if case.server_level and "application/json" not in headers.get("content-type", ""):
        return None
    if headers.get("content-type", "").split(";")[0] != "application/json":
        return f"error content-type {headers.get('content-type')!r}"
    try:
        body = json.loads(data)
    except ValueError:
        return f"error body is not JSON: {data[:200]!r}"
    if openai_route:
        error = body.get("error") if isinstance(body, dict) else None
        if set(body) != {"error"} or not isinstance(error, dict):
            return f"error body is not OpenAI's error schema: {body!r}"[:300]
        if set(error) != {"message", "type", "param", "code"} or not headers.get("x-request-id"):
            return f"error body is not OpenAI's error schema: {body!r}"[:300]
        return None
    if not isinstance(body, dict) or set(body) != {"code", "message", "request_id"}:
        return f"error body is not the error schema: {body!r}"[:300]
    if body["request_id"] != headers.get("x-request-id"):
        return "request_id differs from X-Request-ID"
    return None


def ws_error_ok(message: dict[str, Any]) -> bool:
    return message.get("type") == "error" and set(message) == {
        "type",
        "code",
        "message",
        "request_id",
    }


async def websocket_cases(service: Service) -> list[tuple[str, str | None]]:
    """(case, problem) for each WebSocket case."""
    port, headers = service.port, service.headers
    outcomes: list[tuple[str, str | None]] = []

    async def expect_error(name: str, frame: str, code: str | None = None) -> None:
        ws = await ws_connect(port, headers)
        try:
            await ws.send(frame)
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            problem = None
            if not ws_error_ok(message):
                problem = f"answer is not an error message: {message}"
            elif code is not None and message["code"] != code:
                problem = f"error code {message['code']!r}, expected {code!r}"
            else:
                # The socket stays usable: a valid chat still streams to the end.
                await ws.send(json.dumps({"type": "chat", "messages": [USER], "max_tokens": 2}))
                kinds = []
                while not kinds or kinds[-1] != "done":
                    kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])
            outcomes.append((name, problem))
        except ConnectionClosed:
            outcomes.append((name, f"socket closed ({close_code(ws)}) instead of an error message"))
        finally:
            await ws.close()

    async def expect_close(name: str, send: Any, expected: int) -> None:
        ws = await ws_connect(port, headers, max_size=None)
        try:
            await send(ws)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            code = close_code(ws)
            outcomes.append(
                (name, None if code == expected else f"close code {code}, expected {expected}")
            )
        except TimeoutError:
            outcomes.append((name, f"not closed within 10s (expected {expected})"))
        finally:
            ws.transport.abort()

    await expect_error("ws: malformed JSON", '{"type": "chat", ', "invalid_message")
    await expect_error("ws: JSON array", "[1, 2, 3]", "invalid_message")
    await expect_error("ws: unknown type", '{"type": "explode"}', "invalid_message")
    await expect_error("ws: chat without messages", '{"type": "chat"}', "invalid_message")
    await expect_error(
        "ws: 257 messages",
        json.dumps({"type": "chat", "messages": [USER] * 257}),
        "invalid_message",
    )
    await expect_error(
        "ws: max_tokens -1", json.dumps({"type": "chat", "messages": [USER], "max_tokens": -1})
    )
    await expect_error(
        "ws: lone surrogate",
        '{"type":"chat","messages":[{"role":"user","content":"\\ud800"}]}',
        "invalid_message",
    )
    await expect_error("ws: cancel with nothing running", '{"type": "cancel"}', "nothing_to_cancel")
    await expect_close("ws: binary frame", lambda ws: ws.send(b'{"type": "cancel"}'), 1003)
    await expect_close("ws: oversized message", lambda ws: ws.send("x" * (WS_MAX_BYTES + 1)), 1009)
    await expect_close(
        "ws: text frame that is not UTF-8", lambda ws: ws.send(b"\xff\xfe", text=True), 1007
    )
    return outcomes


@pytest.mark.timeout(240)
def test_bad_input_catalogue(
    deployment: Deployment, tmp_path: Path, figures: Figures, variant: Any
) -> None:
    service = Service(deployment, tmp_path / "service.log").start()
    cases = catalogue()
    problems: list[str] = []
    statuses: dict[str, int] = {}
    try:

        async def run_all() -> list[tuple[str, str | None]]:
            for case in cases:
                try:
                    status, headers, data = await send_case(service, case)
                except Exception as exc:
                    problems.append(f"{case.name}: no answer ({type(exc).__name__}: {exc})")
                    continue
                statuses[case.name] = status
                problem = judge(case, status, headers, data)
                if problem:
                    problems.append(f"{case.name}: {problem}")
            return await websocket_cases(service)

        ws_outcomes = asyncio.run(run_all())
    finally:
        service.stop()
    problems += [f"{name}: {problem}" for name, problem in ws_outcomes if problem]
    problems += [f"log: {p}" for p in service.log_problems(allow=uvicorn_client_fault)]
    figures.requests = len(cases) + len(ws_outcomes)
    figures.faults = len(cases) + len(ws_outcomes)
    figures.details = {
        "http_cases": len(cases),
        "websocket_cases": len(ws_outcomes),
        "statuses": {str(k): v for k, v in sorted(_count(statuses.values()).items())},
    }
    figures.check(problems, limit=40)


def _count(values: Any) -> dict[int, int]:
    out: dict[int, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out
