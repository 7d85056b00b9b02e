"""Security headers on every HTTP response, errors and streams included.

The API serves JSON and event streams only, so the policy is as strict as it
gets: nothing may be loaded, framed or sniffed. Swagger UI and ReDoc are HTML
pages that load their scripts, styles and fonts from public CDNs, so their pages
get a relaxed Content-Security-Policy that allows exactly those.

A header the route already set wins (Server-Sent Events set their own
``Cache-Control: no-cache``); the rest are appended from lists built once here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..service_settings import ServiceSettings

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# FastAPI's pages load swagger-ui/redoc from cdn.jsdelivr.net, run one inline
# script to start them, take the favicon from fastapi.tiangolo.com, and ReDoc
# pulls Google Fonts and runs a blob: worker.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; "
    "connect-src 'self'; "
    "worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), "
    "fullscreen=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), "
    "payment=(), picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), "
    "usb=(), xr-spatial-tracking=(), browsing-topics=()"
)
DOCS_PATHS = ("/docs", "/redoc")

Headers = list[tuple[bytes, bytes]]


def build_headers(settings: ServiceSettings, csp: str) -> Headers:
    headers = [
        (b"cache-control", b"no-store"),
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", PERMISSIONS_POLICY.encode()),
    ]
    if settings.is_production:
        hsts = f"max-age={settings.hsts_max_age}; includeSubDomains"
        headers.append((b"strict-transport-security", hsts.encode()))
    return headers


def with_defaults(
    existing: Iterable[tuple[bytes, bytes]], defaults: Headers, names: frozenset[bytes]
) -> Headers:
    """``existing`` plus each default whose name it does not already have.

    ``names`` is the set of the defaults' names, built once with the defaults.
    """
    headers = list(existing)
    if names.isdisjoint([name.lower() for name, _ in headers]):
        # The usual case: a route rarely sets one of these itself.
        headers += defaults
        return headers
    present = {name.lower() for name, _ in headers}
    headers.extend(item for item in defaults if item[0] not in present)
    return headers


class SecurityHeadersMiddleware:
    def __init__(
        self, app: ASGIApp, *, settings: ServiceSettings, docs_paths: Iterable[str] = DOCS_PATHS
    ) -> None:
        self.app = app
        self.enabled = settings.security_headers
        self.api_headers = build_headers(settings, API_CSP)
        self.docs_headers = build_headers(settings, DOCS_CSP)
        # Both lists name the same headers; only the CSP value differs.
        self.names = frozenset(name for name, _ in self.api_headers)
        self.docs_paths = frozenset(docs_paths)
        self.docs_prefixes = tuple(docs + "/" for docs in self.docs_paths)

    def _is_docs(self, path: str) -> bool:
        return path in self.docs_paths or path.startswith(self.docs_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if not self.enabled or (scope_type != "http" and scope_type != "websocket"):
            await self.app(scope, receive, send)
            return
        defaults = self.docs_headers if self._is_docs(scope["path"]) else self.api_headers
        names = self.names
        started = False

        # A plain function returning send's awaitable: no coroutine frame per token.
        def send_with_headers(message: Message) -> Awaitable[None]:
            nonlocal started
            if not started:
                kind = message["type"]
                # A refused WebSocket handshake is an HTTP response too.
                if kind == "http.response.start" or kind == "websocket.http.response.start":
                    message["headers"] = with_defaults(message.get("headers", ()), defaults, names)
                    started = True
                elif kind.startswith("websocket."):
                    started = True
            return send(message)

        await self.app(scope, receive, send_with_headers)
