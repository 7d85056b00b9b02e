"""``python -m <package>``: serve with host, port, workers and timeouts from settings.

``python -m <package> --no-http`` runs only the app's lifespan, and with it the
servers that features run beside HTTP, with nothing listening on ``PORT``.
SIGTERM or Ctrl-C stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn
from fastapi import FastAPI

from .settings import get_settings


def serve_http() -> None:
    settings = get_settings()
    uvicorn.run(
        f"{__package__}.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_keep_alive=settings.timeout_keep_alive,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or "127.0.0.1",
        # Logging is configured by the app (structlog), and the access log is the
        # request-ID middleware's, which knows routes, principals and streams.
        log_config=None,
        access_log=False,
    )


async def run_lifespan(app: FastAPI) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before start-up, so that a signal that comes while it runs is not lost: the
    # lifespan then ends as soon as it has started.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with app.router.lifespan_context(app):
        await stop.wait()


def serve_without_http() -> None:
    # Imported here: serving HTTP builds the app in each worker, not in this process.
    from .main import create_app

    app = create_app()
    servers = app.state.wiring.hooks.servers
    if not servers:
        raise SystemExit("--no-http: no server besides HTTP is enabled; there is nothing to serve")
    asyncio.run(run_lifespan(app))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__)
    parser.add_argument(
        "--no-http",
        action="store_true",
        help="serve only what runs beside HTTP (the app's lifespan), not HTTP itself",
    )
    args = parser.parse_args(argv)
    if args.no_http:
        serve_without_http()
    else:
        serve_http()


if __name__ == "__main__":
    main()
