"""``python -m <package>``: serve with host, port, workers and timeouts from settings."""

from __future__ import annotations

import uvicorn

from .settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        f"{__package__}.main:app",
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


if __name__ == "__main__":
    main()
