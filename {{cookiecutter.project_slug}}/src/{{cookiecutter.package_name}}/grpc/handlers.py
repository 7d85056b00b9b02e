"""Run an async context manager around any gRPC method handler, whatever its kind.

``grpc.aio`` interceptors see only the method name and metadata, not the call:
to read the peer, send metadata, abort, or hold something (a stream slot) for
as long as a call runs, an interceptor swaps the handler for one whose behavior
runs inside its context manager. grpc.aio dispatches on the behavior's kind (a
coroutine function, or an async generator function for streamed responses
written with ``yield``), so the wrapper keeps the kind of what it wraps. Only
async behaviors are supported: every servicer here is async.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, aclosing
from typing import TYPE_CHECKING, Any

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
Around = Callable[[Context], AbstractAsyncContextManager[None]]
Behavior = Callable[..., Any]
if TYPE_CHECKING:
    # grpc's handler class is generic only in its type stubs, not at run time.
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def metadata_map(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """Text metadata as a dict with lower-case keys; repeated keys joined with commas.

    Binary (``-bin``) values are left out: no authenticator or limit reads them.
    """
    result: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str):
            name = key.lower()
            result[name] = f"{result[name]},{value}" if name in result else value
    return result


def service_of(method: str) -> str:
    """``/streaming.v1.ChatService/StreamChat`` -> ``streaming.v1.ChatService``."""
    return method.split("/")[1] if method.count("/") == 2 else ""


def wrap_behavior(behavior: Behavior, around: Around) -> Behavior:
    if inspect.isasyncgenfunction(behavior):

        async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
            async with around(context), aclosing(behavior(request, context)) as responses:
                async for response in responses:
                    yield response

        return generator

    async def coroutine(request: Any, context: Context) -> Any:
        async with around(context):
            return await behavior(request, context)

    return coroutine


def wrap_handler(handler: Handler, around: Around) -> Handler:
    """The same handler with every call run inside ``around(context)``."""
    options: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            wrap_behavior(handler.stream_stream, around), **options
        )
    if handler.request_streaming:
        assert handler.stream_unary is not None
        return grpc.stream_unary_rpc_method_handler(
            wrap_behavior(handler.stream_unary, around), **options
        )
    if handler.response_streaming:
        assert handler.unary_stream is not None
        return grpc.unary_stream_rpc_method_handler(
            wrap_behavior(handler.unary_stream, around), **options
        )
    assert handler.unary_unary is not None
    return grpc.unary_unary_rpc_method_handler(
        wrap_behavior(handler.unary_unary, around), **options
    )
