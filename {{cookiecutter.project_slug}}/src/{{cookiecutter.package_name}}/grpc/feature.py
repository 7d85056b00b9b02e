"""``use_grpc``: serve the chat core over gRPC, started and stopped with the app."""

from __future__ import annotations

from fastapi import FastAPI

from ..wiring import Wiring
from .server import GrpcServer


def install(app: FastAPI, wiring: Wiring) -> None:
    if not wiring.settings.grpc_enabled:
        return
    server = GrpcServer(wiring)
    app.state.grpc_server = server
    wiring.startup.append(lambda _app: server.start())
    wiring.shutdown.append(lambda _app: server.stop())
    # No readiness check: the server runs exactly as long as the app's lifespan,
    # and a port it cannot bind stops the start.
