"""The gRPC health service, with watches that end at shutdown.

grpcio-health-checking's servicer answers ``Check`` and ``Watch`` and turns
every service NOT_SERVING on ``enter_graceful_shutdown``; this subclass keeps
all of that and replaces ``Watch`` only. The stock ``Watch`` keeps the call
open after reporting NOT_SERVING, so a balancer's idle watch held the server's
graceful stop for the whole grace period (and the process's exit with it).
Here a watch ends, with OK, once it has reported NOT_SERVING at shutdown: the
watcher has what it needs, and reconnects to another instance.
"""

from __future__ import annotations

import asyncio

from grpc.aio import ServicerContext
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

HealthContext = ServicerContext[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]


class HealthServicer(health_aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._draining = False

    async def set(self, service: str, status: int) -> None:
        await super().set(service, status)
        if not self._draining:
            await self._publish(service, status)

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        async with self._changed:
            self._draining = True
            for service in self._statuses:
                self._statuses[service] = health_pb2.HealthCheckResponse.NOT_SERVING
            self._changed.notify_all()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: HealthContext) -> None:
        sent: int | None = None
        async with self._changed:
            while True:
                status = self._statuses.get(
                    request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
                )
                if status != sent:
                    await context.write(health_pb2.HealthCheckResponse(status=status))
                    sent = status
                if self._draining:
                    return
                await self._changed.wait()

    async def _publish(self, service: str, status: int) -> None:
        async with self._changed:
            self._statuses[service] = status
            self._changed.notify_all()
