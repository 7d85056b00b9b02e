"""The server's life: started and stopped with the app, health, reflection, workers, settings."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from grpc_helpers import (
    AUTH_METADATA,
    CHAT_SERVICE,
    HEALTH_SERVICE,
    REFLECTION_SERVICE,
    SERVICE_MODULE,
    SRC,
    TEST_DEFAULTS,
    Calls,
    SettingsFactory,
    collect,
    connect,
    create_app,
    fake_of,
    free_port,
    grpc_app,
    grpc_port,
    health_pb2,
    http_client,
    reflection_pb2,
    request,
    running,
    serving_grpc,
    trailing,
    wait_until,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_serves_the_chat_service(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings)) as client:
        check = client.health_check
        overall = await check(health_pb2.HealthCheckRequest(service=""))
        chat = await check(health_pb2.HealthCheckRequest(service=CHAT_SERVICE))
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await check(health_pb2.HealthCheckRequest(service="no.such.Service"))

    assert overall.status == SERVING
    assert chat.status == SERVING
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_shutdown_reports_not_serving_and_ends_running_streams(
    make_settings: SettingsFactory,
) -> None:
    app = grpc_app(make_settings, fake_llm_delay_ms=20, shutdown_grace_seconds=5)
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    leave = asyncio.Event()

    async def serve() -> None:
        async with running(app):
            started.set_result(grpc_port(app))
            await leave.wait()

    task = asyncio.create_task(serve())
    port = await started
    async with connect(port) as client:
        watch = client.health_watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        stream = client.chat.StreamChat(request(max_tokens=1000), metadata=AUTH_METADATA)
        assert (await stream.read()) != grpc.aio.EOF

        leave.set()
        second = await watch.read()
        events, error = await collect(stream)
        # The watch ends by itself once it has said NOT_SERVING: it does not hold
        # the server's stop for the grace period.
        after_not_serving = await watch.read()
        await asyncio.wait_for(task, timeout=2)
        watch_status = await watch.code()

    assert isinstance(first, health_pb2.HealthCheckResponse)
    assert first.status == SERVING
    assert isinstance(second, health_pb2.HealthCheckResponse)
    assert second.status == NOT_SERVING
    assert after_not_serving is grpc.aio.EOF
    assert watch_status == grpc.StatusCode.OK
    assert events[-1].error.code == "shutting_down"
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert trailing(error)["x-error-code"] == "shutting_down"
    assert app.state.wiring.core.active == 0
    async with connect(port) as client:
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await client.health_check(health_pb2.HealthCheckRequest(), timeout=1)
    assert gone.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def reflect(
    client: Calls, message: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    call = client.reflection()
    await call.write(message)
    await call.done_writing()
    response = await call.read()
    assert isinstance(response, reflection_pb2.ServerReflectionResponse)
    return response


async def test_reflection_lists_and_describes_the_services(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings)) as client:
        listed = await reflect(client, reflection_pb2.ServerReflectionRequest(list_services=""))
        described = await reflect(
            client, reflection_pb2.ServerReflectionRequest(file_containing_symbol=CHAT_SERVICE)
        )

    services = {service.name for service in listed.list_services_response.service}
    assert services == {CHAT_SERVICE, HEALTH_SERVICE, REFLECTION_SERVICE}
    files = described.file_descriptor_response.file_descriptor_proto
    assert any(b"streaming/v1/chat.proto" in blob for blob in files)


async def test_reflection_can_be_turned_off(make_settings: SettingsFactory) -> None:
    async with serving_grpc(grpc_app(make_settings, grpc_reflection=False)) as client:
        # Only the call's status: a message written to a call the server has already
        # ended as UNIMPLEMENTED can fail in the client's core first, as INTERNAL.
        call = client.reflection()
        off = await call.code()
        await client.chat.Chat(request(), metadata=AUTH_METADATA)
    assert off == grpc.StatusCode.UNIMPLEMENTED


async def test_grpc_enabled_false_starts_no_server(make_settings: SettingsFactory) -> None:
    port = free_port()
    app = create_app(make_settings(grpc_enabled=False, grpc_port=port))
    async with running(app) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert not listening(port)
    assert not hasattr(app.state, "grpc_server")


async def test_a_real_uvicorn_starts_and_stops_grpc_with_its_lifespan(live_server: Any) -> None:
    port = free_port()
    server = await live_server(grpc_port=port)
    async with connect(port) as client:
        reply = await client.chat.Chat(request(max_tokens=3), metadata=AUTH_METADATA)
        health = await client.health_check(health_pb2.HealthCheckRequest())
    async with http_client(server.url) as http:
        ready = await http.get("/readyz")
    assert reply.usage.completion_tokens == 3
    assert health.status == SERVING
    assert ready.status_code == 200
    await server.stop()
    assert not listening(port)


async def test_workers_share_the_port(make_settings: SettingsFactory) -> None:
    """What ``WORKERS=2`` does: two processes' servers on one port (SO_REUSEPORT)."""
    port = free_port()
    first = grpc_app(make_settings, grpc_port=port)
    second = grpc_app(make_settings, grpc_port=port)
    calls = 24
    async with running(second):
        async with running(first):
            for _ in range(calls):
                # A new channel is a new connection, which the kernel may give either.
                async with connect(port) as client:
                    await client.chat.Chat(request(max_tokens=1), metadata=AUTH_METADATA)
            served = (fake_of(first).started, fake_of(second).started)
        async with connect(port) as client:
            await client.chat.Chat(request(max_tokens=1), metadata=AUTH_METADATA)
    assert sum(served) == calls
    assert min(served) > 0, served
    assert fake_of(second).started == served[1] + 1


async def test_a_port_held_by_another_program_stops_the_start(
    make_settings: SettingsFactory,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        app = grpc_app(make_settings, grpc_port=port)
        with pytest.raises(RuntimeError, match=f"gRPC cannot listen on 127.0.0.1:{port}"):
            async with running(app):
                pass


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 9000, "grpc_port": 9000}, "GRPC_PORT must differ from PORT"),
    ],
)
def test_settings_refuse_unusable_ports(
    make_settings: SettingsFactory, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        make_settings(**overrides)
    make_settings(**{**overrides, "grpc_enabled": False})


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def subprocess_env(port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    for name, value in TEST_DEFAULTS.items():
        if isinstance(value, str | int | float):
            env[name.upper()] = str(value)
    env.update(
        PYTHONPATH=str(SRC),
        GRPC_PORT=str(port),
        PORT=str(free_port()),
        LOG_FORMAT="json",
    )
    return env


async def test_python_m_no_http_serves_grpc_alone_and_stops_on_sigterm(tmp_path: Any) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", SERVICE_MODULE, "--no-http"],
        cwd=tmp_path,  # no .env here
        env=subprocess_env(port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Polled here rather than by the channel, whose reconnect backoff waits seconds.
        await wait_until(
            lambda: listening(port) or process.poll() is not None, timeout=20, interval=0.05
        )
        async with connect(port) as client:
            health = await client.health_check(health_pb2.HealthCheckRequest(), timeout=5)
            reply = await client.chat.Chat(request(max_tokens=2), metadata=AUTH_METADATA)
        process.send_signal(signal.SIGTERM)
        await wait_until(lambda: process.poll() is not None, timeout=10, interval=0.05)
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=5)

    assert health.status == SERVING
    assert reply.usage.completion_tokens == 2
    assert process.returncode == 0, stderr
    assert '"grpc.started"' in stderr
    assert '"grpc.stopped"' in stderr
