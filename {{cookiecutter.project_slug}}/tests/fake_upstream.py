"""A real OpenAI-compatible HTTP server on loopback, scriptable per test.

The server runs uvicorn in a background thread with its own event loop, so it
serves sync and async tests alike and keeps answering while a test's loop is busy::

    with FakeUpstream() as upstream:                 # or .start() / .stop()
        upstream.enqueue(server_error(503), StreamScript(tokens=("Hi", "!")))
        provider = OpenAIProvider(base_url=upstream.base_url, ...)
        ...
        assert len(upstream.requests) == 2
        assert upstream.requests[0].headers["authorization"] == "Bearer sk-test"

Each ``POST /v1/chat/completions`` takes the next queued script, or ``default``
when the queue is empty. ``streams_opened``, ``streams_closed`` and ``disconnects``
count SSE responses, so a test can prove that a client let go of a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from threaded_server import ThreadedServer

MODEL_FALLBACK = "fake-upstream-model"


@dataclass(frozen=True, slots=True)
class StreamScript:
    """An SSE answer, optionally misbehaving at a given token index.

    ``*_after=n`` acts once ``n`` tokens have been sent (``0``: before the first;
    ``len(tokens)``: after the last, before the finish chunk):
    ``drop_after`` closes the connection abruptly, ``malformed_after`` sends a chunk
    that is not JSON then carries on, and ``hang_after`` stops sending and holds the
    stream open until the client leaves or the server is reset or stopped.
    """

    # A string is a content delta; a mapping is sent as the whole delta (tool calls).
    tokens: Sequence[str | Mapping[str, Any]] = ("Hello", ",", " world")
    finish_reason: str | None = "stop"
    prompt_tokens: int = 7
    # The usage chunk is sent only if the request also asked for it, as OpenAI does.
    send_usage: bool = True
    send_done: bool = True
    headers_delay: float = 0.0
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    drop_after: int | None = None
    malformed_after: int | None = None
    hang_after: int | None = None


@dataclass(frozen=True, slots=True)
class JSONScript:
    """A non-streamed ``chat.completion`` document, as from an upstream ignoring ``stream``."""

    text: str = "Hello, world"
    finish_reason: str = "stop"
    prompt_tokens: int = 7
    completion_tokens: int = 3


@dataclass(frozen=True, slots=True)
class ErrorScript:
    """An error status; a ``str`` body is sent as text, anything else as JSON."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


Script = StreamScript | JSONScript | ErrorScript


def openai_error(message: str, *, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def rate_limited(
    retry_after: str | None = "1", *, code: str = "rate_limit_exceeded"
) -> ErrorScript:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    body = openai_error("Rate limit reached for requests", type_="requests", code=code)
    return ErrorScript(429, body, headers)


def context_length_exceeded() -> ErrorScript:
    message = (
        "This model's maximum context length is 8192 tokens. However, your messages "
        "resulted in 9001 tokens. Please reduce the length of the messages."
    )
    body = openai_error(message, type_="invalid_request_error", code="context_length_exceeded")
    return ErrorScript(400, body)


def bad_request(message: str = "Invalid value for 'temperature'.") -> ErrorScript:
    return ErrorScript(400, openai_error(message, type_="invalid_request_error", code=None))


def server_error(status: int = 500, *, retry_after: str | None = None) -> ErrorScript:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    body = openai_error(
        "The server had an error processing your request.", type_="server_error", code=None
    )
    return ErrorScript(status, body, headers)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    # Lower-case names; a repeated header keeps its last value.
    headers: dict[str, str]
    # The parsed JSON body, or ``None`` when the body was not JSON.
    body: Any
    # Two requests with the same port came over one kept-alive connection.
    client_port: int | None


StreamOutcome = Literal["completed", "dropped", "released", "disconnected"]


class FakeUpstream(ThreadedServer):
    """An OpenAI-compatible server on ``127.0.0.1`` and a free port."""

    name = "fake-upstream"

    def __init__(self, default: Script | None = None) -> None:
        super().__init__()
        self.default: Script = default or StreamScript()
        self._lock = threading.Lock()
        self._queue: deque[Script] = deque()
        self._requests: list[RecordedRequest] = []
        self._outcomes: list[StreamOutcome] = []
        self._opened = 0
        # Hanging streams poll ``release`` (a threading.Event) rather than an asyncio
        # event, because it is set from the test's thread while they wait in the
        # server's loop.
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    # --- lifecycle ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to configure as ``LLM_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        """Forget scripts, requests and counters, ending any stream still open."""
        self.release.set()
        deadline = time.monotonic() + 2
        while self.open_streams and time.monotonic() < deadline:
            time.sleep(0.005)
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._outcomes.clear()
            self._opened = 0
        self.default = StreamScript()
        self.release.clear()

    # --- scripting and inspection ---------------------------------------------

    def enqueue(self, *scripts: Script) -> None:
        """Answer the next requests with these scripts, in order."""
        with self._lock:
            self._queue.extend(scripts)

    def release_hangs(self) -> None:
        """End every stream held by ``hang_after``, now and until ``reset``."""
        self.release.set()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def streams_opened(self) -> int:
        return self._opened

    @property
    def streams_closed(self) -> int:
        return len(self._outcomes)

    @property
    def open_streams(self) -> int:
        return self._opened - len(self._outcomes)

    @property
    def disconnects(self) -> int:
        """SSE streams the client closed before the server finished them."""
        with self._lock:
            return self._outcomes.count("disconnected")

    @property
    def outcomes(self) -> list[StreamOutcome]:
        with self._lock:
            return list(self._outcomes)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 1.0) -> bool:
        """Poll ``predicate`` without blocking the caller's loop; whether it came true."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    def wait_for_sync(self, predicate: Callable[[], bool], timeout: float = 1.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    # --- server side -----------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body,
            client_port=request.client.port if request.client else None,
        )
        with self._lock:
            self._requests.append(record)
            script = self._queue.popleft() if self._queue else self.default
        if isinstance(script, ErrorScript):
            if isinstance(script.body, str):
                return PlainTextResponse(script.body, script.status, dict(script.headers))
            return JSONResponse(script.body, script.status, dict(script.headers))
        model = body.get("model", MODEL_FALLBACK) if isinstance(body, dict) else MODEL_FALLBACK
        if isinstance(script, JSONScript):
            return JSONResponse(_completion(script, model))
        options = body.get("stream_options") if isinstance(body, dict) else None
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return _ScriptedStream(self, script, model=model, include_usage=include_usage)

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL_FALLBACK, "object": "model"}]})

    def _stream_opened(self) -> None:
        with self._lock:
            self._opened += 1

    def _stream_closed(self, outcome: StreamOutcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)

    async def _hang(self) -> None:
        while not self.release.is_set():
            await asyncio.sleep(0.005)


class _ScriptedStream(Response):
    """Plays a ``StreamScript`` while watching for the client going away."""

    def __init__(
        self, upstream: FakeUpstream, script: StreamScript, *, model: str, include_usage: bool
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self.upstream = upstream
        self.script = script
        self.model = model
        self.include_usage = include_usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.upstream._stream_opened()
        outcome: StreamOutcome = "disconnected"
        producer = asyncio.create_task(self._produce(send))
        watcher = asyncio.create_task(_until_disconnect(receive))
        try:
            done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            # A send to a vanished client raises an OSError (ClientDisconnected).
            if producer in done and producer.exception() is None:
                outcome = producer.result()
        finally:
            for task in (producer, watcher):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            self.upstream._stream_closed(outcome)

    async def _produce(self, send: Send) -> StreamOutcome:
        script = self.script
        if script.headers_delay:
            await asyncio.sleep(script.headers_delay)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )

        async def event(data: str) -> None:
            body = f"data: {data}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})

        await event(json.dumps(_chunk(self.model, {"role": "assistant", "content": ""})))
        tokens = list(script.tokens)
        for index in range(len(tokens) + 1):
            if index == script.drop_after:
                # Returning without finishing the body makes uvicorn close the socket.
                return "dropped"
            if index == script.malformed_after:
                await event('{"id": "chatcmpl-fake", "choices": [{"delta": {"content": ')
            if index == script.hang_after:
                await self.upstream._hang()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return "released"
            if index == len(tokens):
                break
            delay = script.first_token_delay if index == 0 else script.token_delay
            if delay:
                await asyncio.sleep(delay)
            token = tokens[index]
            delta = {"content": token} if isinstance(token, str) else dict(token)
            await event(json.dumps(_chunk(self.model, delta)))
        if script.finish_reason is not None:
            await event(json.dumps(_chunk(self.model, {}, script.finish_reason)))
        if script.send_usage and self.include_usage:
            usage = _usage(script.prompt_tokens, len(tokens))
            await event(json.dumps(_chunk(self.model, None, usage=usage)))
        if script.send_done:
            await event("[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "completed"


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunk(
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    *,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    # OpenAI sends the usage in a last chunk with no choices, and ``usage: null``
    # in every other chunk once ``include_usage`` is on.
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
        "usage": usage,
    }


def _completion(script: JSONScript, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": script.text},
                "logprobs": None,
                "finish_reason": script.finish_reason,
            }
        ],
        "usage": _usage(script.prompt_tokens, script.completion_tokens),
    }
