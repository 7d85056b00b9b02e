"""The ``grpc.aio`` server: chat service, health, reflection and the interceptors.

Several workers: gRPC does not survive ``fork``, but uvicorn starts its workers
by ``spawn``, so every worker process imports the app and starts its own server
from the app's lifespan. The port is bound with ``SO_REUSEPORT`` (grpc's default
on Linux, set here on purpose): every worker listens on ``GRPC_PORT`` and the
kernel spreads new connections over them. Linux shares a port only between
processes of the same user that all ask for it, so a port held by anything
else still fails the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..auth.authenticators import Authenticator
from ..chat.service import ChatService
from ..ratelimit.policy import RateLimitPolicy
from . import chat_pb2, chat_pb2_grpc
from .health import HealthServicer
from .interceptors import AuthInterceptor, CallLogInterceptor, RateLimitInterceptor
from .servicer import ChatServicer
from .settings import GrpcSettings

CHAT_SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name
# The health service's overall status ("") follows the chat service's.
HEALTH_SERVICES = ("", CHAT_SERVICE)

log = structlog.get_logger("grpc")


def bind_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class GrpcServer:
    """The app's shared objects served over gRPC; the server itself is made at start,
    inside the event loop it will run on."""

    def __init__(
        self,
        core: ChatService,
        settings: GrpcSettings,
        policy: RateLimitPolicy,
        authenticators: Sequence[Authenticator],
    ) -> None:
        self._core = core
        self._settings = settings
        self._policy = policy
        self._authenticators = tuple(authenticators)
        self._server: grpc.aio.Server | None = None
        self._health: HealthServicer | None = None
        self.port: int | None = None

    def _build(self) -> tuple[grpc.aio.Server, HealthServicer]:
        settings = self._settings
        services = frozenset({CHAT_SERVICE})
        server = grpc.aio.server(
            interceptors=[
                CallLogInterceptor(),
                AuthInterceptor(self._authenticators, services),
                RateLimitInterceptor(self._policy, services),
            ],
            options=[
                ("grpc.so_reuseport", 1),
                # The same bound as HTTP bodies (MAX_REQUEST_SIZE).
                ("grpc.max_receive_message_length", settings.max_request_size),
            ],
        )
        chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(self._core), server)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        if settings.grpc_reflection:
            reflection.enable_server_reflection(
                (
                    CHAT_SERVICE,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                server,
            )
        return server, health

    async def start(self) -> None:
        settings = self._settings
        server, health = self._build()
        address = bind_address(settings.grpc_host or settings.host, settings.grpc_port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC cannot listen on {address}: {exc}") from None
        if port == 0:
            raise RuntimeError(f"gRPC cannot listen on {address}: is the port in use?")
        await server.start()
        for service in HEALTH_SERVICES:
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server, self._health, self.port = server, health, port
        log.info("grpc.started", address=bind_address(settings.grpc_host or settings.host, port))

    async def stop(self) -> None:
        """NOT_SERVING first, so that balancers stop sending calls, then a graceful stop.

        Running generations were already told to end (the lifespan drains the
        core before the shutdown hooks) and health watches end once they have
        reported NOT_SERVING; ``SHUTDOWN_GRACE_SECONDS`` bounds the wait for any
        call still open, which is then cancelled.
        """
        server, health = self._server, self._health
        if server is None or health is None:
            return
        await health.enter_graceful_shutdown()
        await server.stop(self._settings.shutdown_grace_seconds)
        self._server = self._health = None
        log.info("grpc.stopped")
