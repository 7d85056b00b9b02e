"""``python -m <package>.grpc``: serve gRPC alone, without the HTTP server.

The app is built exactly as for HTTP (``main.app``: core, limiter, every
feature) and only its lifespan runs, which starts and stops the gRPC server
with the rest; nothing listens on ``PORT``. SIGTERM or Ctrl-C stops it
gracefully.
"""

from __future__ import annotations

import asyncio
import signal

from fastapi import FastAPI

from ..main import app


async def serve(app: FastAPI) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with app.router.lifespan_context(app):
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()


def main() -> None:
    if not app.state.settings.grpc_enabled:
        raise SystemExit("GRPC_ENABLED is false: there is nothing to serve")
    asyncio.run(serve(app))


if __name__ == "__main__":
    main()
