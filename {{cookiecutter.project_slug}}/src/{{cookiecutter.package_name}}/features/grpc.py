"""``use_grpc``: serve the chat core over gRPC, started and stopped with the app."""

from __future__ import annotations

from fastapi import FastAPI

from ..grpc.server import GrpcServer
from .base import Feature, Wiring


class GrpcFeature(Feature):
    name = "grpc"

    def install(self, app: FastAPI, wiring: Wiring) -> None:
        if not wiring.settings.grpc_enabled:
            return
        server = GrpcServer(wiring.core, wiring.settings, wiring.policy, wiring.authenticators)
        # The feature's own state (tests and operators read the bound port from it).
        app.state.grpc_server = server
        wiring.hooks.startup.append(lambda _app: server.start())
        wiring.hooks.shutdown.append(lambda _app: server.stop())
        wiring.hooks.servers.append("gRPC")
        # No readiness check: the server runs exactly as long as the app's lifespan,
        # and a port it cannot bind stops the start.
