"""One streamed chat per transport, read in full, dropped at a chosen moment, or held.

Shared by the disconnect storm and the graceful-shutdown test. Each runner returns a
``StreamResult``: how many tokens arrived, how the stream ended, and what was wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed

from .clients import GrpcChat, HTTPStream, close_code, grpc_event_kind, ws_connect
from .harness import API

Kind = Literal["before_first", "mid", "full", "hold"]


@dataclass
class StreamResult:
    transport: str
    kind: Kind
    tokens: int = 0
    # Event types in order (token runs collapsed), the WebSocket close code, or the gRPC status.
    ending: list[str] = field(default_factory=list)
    close_code: int | None = None
    status: str | None = None
    error_code: str | None = None
    problem: str | None = None
    first_token_at: float | None = None
    ended_at: float | None = None


@dataclass
class Plan:
    """What one stream does: its kind, when to drop, how many tokens to ask for."""

    kind: Kind
    max_tokens: int
    drop_after_tokens: int = 0
    drop_after_seconds: float = 0.0
    abort: bool = False
    # For "hold": set once the first token has arrived.
    started: asyncio.Event | None = None
    # For "hold": a stream that should end because the server shuts down.
    shutdown_expected: bool = False


def chat_body(
    max_tokens: int, content: str = "storm of tokens over every transport"
) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}


def _note(result: StreamResult, kind: str) -> None:
    if not result.ending or result.ending[-1] != kind:
        result.ending.append(kind)


def _check_full(result: StreamResult, plan: Plan) -> None:
    if plan.kind == "full" and result.problem is None and result.tokens != plan.max_tokens:
        result.problem = f"{result.tokens} tokens instead of {plan.max_tokens}"
    if plan.kind == "mid" and result.problem is None and result.tokens < plan.drop_after_tokens:
        result.problem = f"ended after {result.tokens} tokens, before the planned drop"
    if plan.kind == "before_first" and result.tokens:
        result.problem = "a token arrived before the planned drop"


def _took_token(result: StreamResult, plan: Plan) -> bool:
    """Count one token received; ``True`` when the plan says to drop the stream now."""
    result.tokens += 1
    if result.first_token_at is None:
        result.first_token_at = time.monotonic()
        if plan.started is not None:
            plan.started.set()
    return plan.kind == "mid" and result.tokens >= plan.drop_after_tokens


async def _pause_then_drop(plan: Plan, drop: Callable[[], Any]) -> None:
    await asyncio.sleep(plan.drop_after_seconds)
    drop()


async def run_sse(port: int, headers: dict[str, str], plan: Plan) -> StreamResult:
    result = StreamResult("sse", plan.kind)
    stream = await HTTPStream.open(
        port, "POST", API + "/chat/stream", json_body=chat_body(plan.max_tokens), headers=headers
    )
    drop = stream.abort if plan.abort else stream.close
    try:
        if plan.kind == "before_first":
            await _pause_then_drop(plan, drop)
            return result
        head = await stream.read_head()
        if head.status != 200:
            result.problem = f"status {head.status}: {(await stream.read_body())[:200]!r}"
            return result
        ids = []
        async for event in stream.iter_events():
            _note(result, event.event)
            if event.id is not None:
                ids.append(int(event.id))
            if event.event == "token":
                if _took_token(result, plan):
                    drop()
                    return result
            elif event.event == "done":
                result.status = event.json()["finish_reason"]
            elif event.event == "error":
                result.error_code = event.json()["code"]
        result.ended_at = time.monotonic()
        if ids != list(range(len(ids))):
            result.problem = "event ids are not 0, 1, 2, ..."
        if plan.kind == "full" and result.ending[-2:] != ["usage", "done"]:
            result.problem = f"ended with {result.ending[-3:]}, expected usage then done"
        if plan.kind == "full" and result.status != "length":
            result.problem = f"finish_reason {result.status!r}"
        if plan.kind == "hold" and (
            result.ending[-2:] != ["error", "done"]
            or result.error_code != "shutting_down"
            or result.status != "shutdown"
        ):
            result.problem = (
                f"ended with {result.ending[-3:]} (error {result.error_code!r}, "
                f"finish_reason {result.status!r}), expected shutting_down then done"
            )
        _check_full(result, plan)
        return result
    finally:
        stream.close()


async def run_openai(port: int, headers: dict[str, str], plan: Plan) -> StreamResult:
    result = StreamResult("openai", plan.kind)
    body = {"model": "fake-echo-1", "stream": True, **chat_body(plan.max_tokens)}
    stream = await HTTPStream.open(
        port, "POST", API + "/chat/completions", json_body=body, headers=headers
    )
    drop = stream.abort if plan.abort else stream.close
    try:
        if plan.kind == "before_first":
            await _pause_then_drop(plan, drop)
            return result
        head = await stream.read_head()
        if head.status != 200:
            result.problem = f"status {head.status}: {(await stream.read_body())[:200]!r}"
            return result
        async for event in stream.iter_events():
            if event.data == "[DONE]":
                _note(result, "[DONE]")
                continue
            chunk = event.json()
            if "error" in chunk:
                _note(result, "error")
                result.error_code = chunk["error"]["code"]
                continue
            choices = chunk.get("choices") or []
            if not choices:
                _note(result, "usage")
                continue
            choice = choices[0]
            if choice.get("finish_reason"):
                _note(result, "finish")
                result.status = choice["finish_reason"]
            elif choice["delta"].get("content"):
                _note(result, "token")
                if _took_token(result, plan):
                    drop()
                    return result
            else:
                _note(result, "role")
        result.ended_at = time.monotonic()
        if result.ending[-1:] != ["[DONE]"]:
            result.problem = f"ended with {result.ending[-3:]}, expected [DONE] last"
        elif plan.kind == "full" and result.status != "length":
            result.problem = f"finish_reason {result.status!r}"
        elif plan.kind == "hold" and (
            result.ending[-2:] != ["error", "[DONE]"] or result.error_code != "shutting_down"
        ):
            result.problem = (
                f"ended with {result.ending[-3:]} (error {result.error_code!r}), "
                "expected a shutting_down error chunk then [DONE]"
            )
        _check_full(result, plan)
        return result
    finally:
        stream.close()


async def run_websocket(port: int, headers: dict[str, str], plan: Plan) -> StreamResult:
    result = StreamResult("websocket", plan.kind)
    ws = await ws_connect(port, headers)
    drop = ws.transport.abort if plan.abort else ws.transport.close
    try:
        await ws.send(json.dumps({"type": "chat", **chat_body(plan.max_tokens)}))
        if plan.kind == "before_first":
            await _pause_then_drop(plan, drop)
            return result
        try:
            while True:
                message = json.loads(await ws.recv())
                kind = message["type"]
                _note(result, kind)
                if kind == "token":
                    if _took_token(result, plan):
                        drop()
                        return result
                elif kind == "done":
                    result.status = message["finish_reason"]
                    if plan.kind != "hold":
                        break
                elif kind == "error":
                    result.error_code = message["code"]
        except ConnectionClosed:
            pass
        result.ended_at = time.monotonic()
        result.close_code = close_code(ws)
        if plan.kind == "full" and (
            result.status != "length" or result.ending[-2:] != ["usage", "done"]
        ):
            result.problem = f"ended with {result.ending[-3:]} ({result.status!r})"
        if plan.kind == "hold" and result.close_code != 1012:
            result.problem = f"close code {result.close_code}, expected 1012 (service restart)"
        _check_full(result, plan)
        return result
    finally:
        if plan.kind == "full":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        else:
            ws.transport.abort()


async def run_grpc(client: GrpcChat, plan: Plan) -> StreamResult:
    import grpc

    result = StreamResult("grpc", plan.kind)
    call = client.stream("storm of tokens over every transport", plan.max_tokens)
    try:
        if plan.kind == "before_first":
            await asyncio.sleep(plan.drop_after_seconds)
            call.cancel()
            return result
        try:
            async for event in call:
                kind = grpc_event_kind(event)
                _note(result, kind)
                if kind == "token":
                    if _took_token(result, plan):
                        call.cancel()
                        return result
                elif kind == "done":
                    result.status = event.done.finish_reason
                elif kind == "error":
                    result.error_code = event.error.code
        except grpc.aio.AioRpcError as error:
            result.close_code = error.code().value[0]
            result.ending.append(f"status:{error.code().name}")
        result.ended_at = time.monotonic()
        code = await call.code()
        if plan.kind == "full" and (code != grpc.StatusCode.OK or result.status != "length"):
            result.problem = f"status {code.name}, finish_reason {result.status!r}"
        result.status = result.status or code.name
        if plan.kind == "hold" and result.error_code != "shutting_down":
            result.problem = (
                f"ended with {result.ending[-3:]} (status {code.name}, error "
                f"{result.error_code!r}), expected a shutting_down error event"
            )
        _check_full(result, plan)
        return result
    finally:
        call.cancel()


GRAPHQL_PATH = API + "/graphql"
GRAPHQL_SUBSCRIPTION = """
subscription Stream($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on TokenEvent { index text }
    ... on DoneEvent { finishReason }
    ... on ErrorEvent { code message requestId }
  }
}
"""
GRAPHQL_KINDS = {
    "TokenEvent": "token",
    "UsageEvent": "usage",
    "DoneEvent": "done",
    "ErrorEvent": "error",
}


async def run_graphql(port: int, headers: dict[str, str], plan: Plan) -> StreamResult:
    """A ``chatStream`` subscription over graphql-transport-ws."""
    import websockets

    result = StreamResult("graphql", plan.kind)
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}{GRAPHQL_PATH}",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers=headers,
        open_timeout=30,
        ping_interval=None,
        close_timeout=5,
    )
    drop = ws.transport.abort if plan.abort else ws.transport.close

    async def receive() -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message.get("type") == "ping":
                await ws.send('{"type": "pong"}')
                continue
            return message

    try:
        payload = {name.lower(): value for name, value in headers.items()}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = await receive()
        if ack.get("type") != "connection_ack":
            result.problem = f"connection_init answered {ack}"
            return result
        variables = {
            "input": {
                "messages": [{"role": "user", "content": "storm of tokens over every transport"}],
                "maxTokens": plan.max_tokens,
            }
        }
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": GRAPHQL_SUBSCRIPTION, "variables": variables},
                }
            )
        )
        if plan.kind == "before_first":
            await _pause_then_drop(plan, drop)
            return result
        try:
            while True:
                message = await receive()
                if message["type"] == "complete":
                    _note(result, "complete")
                    break
                if message["type"] == "error":
                    result.problem = f"subscription error: {message.get('payload')}"
                    return result
                data = (message.get("payload") or {}).get("data") or {}
                event = data.get("chatStream") or {}
                kind = GRAPHQL_KINDS.get(event.get("__typename", ""), "unknown")
                _note(result, kind)
                if kind == "token":
                    if _took_token(result, plan):
                        drop()
                        return result
                elif kind == "done":
                    result.status = event["finishReason"]
                elif kind == "error":
                    result.error_code = event["code"]
        except ConnectionClosed:
            result.close_code = close_code(ws)
        result.ended_at = time.monotonic()
        if plan.kind == "full" and (result.status != "length" or "complete" not in result.ending):
            result.problem = f"ended with {result.ending[-3:]} ({result.status!r})"
        if (
            plan.kind == "hold"
            and result.error_code != "shutting_down"
            and result.close_code != 1012
        ):
            result.problem = (
                f"ended with {result.ending[-3:]} (error {result.error_code!r}, close "
                f"{result.close_code}), expected a shutting_down error event or close 1012"
            )
        _check_full(result, plan)
        return result
    finally:
        ws.transport.abort()


Runner = Callable[[Plan], Awaitable[StreamResult]]


async def guarded(transport: str, plan: Plan, runner: Runner, timeout: float) -> StreamResult:
    """Run one stream within ``timeout``; any exception becomes the stream's problem."""
    try:
        async with asyncio.timeout(timeout):
            return await runner(plan)
    except TimeoutError:
        return StreamResult(transport, plan.kind, problem=f"no end within {timeout}s")
    except Exception as exc:
        return StreamResult(transport, plan.kind, problem=f"{type(exc).__name__}: {exc}"[:300])
