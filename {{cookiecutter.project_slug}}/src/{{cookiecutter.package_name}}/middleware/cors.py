"""CORS from the settings, on top of Starlette's pure-ASGI implementation.

Only two things differ from Starlette: with no ``CORS_ORIGINS`` the layer is
skipped entirely (no CORS headers at all), and a refused preflight answers 403
with the service's JSON error shape instead of a plain-text 400.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings import Settings
from . import deny

ALLOW_METHODS = ("GET", "POST", "OPTIONS")
ALLOW_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID", "X-API-Key", "X-Request-ID")
EXPOSE_HEADERS = ("X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy")
MAX_AGE = 600


class CORSMiddleware(StarletteCORSMiddleware):
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        super().__init__(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            allow_credentials=settings.cors_allow_credentials,
            expose_headers=EXPOSE_HEADERS,
            max_age=MAX_AGE,
        )
        self.enabled = bool(settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                await self._preflight(scope, send, headers)
                return
        await self.simple_response(scope, receive, send, request_headers=Headers(scope=scope))

    async def _preflight(self, scope: Scope, send: Send, headers: Headers) -> None:
        response = self.preflight_response(request_headers=headers)
        if response.status_code < 400:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": self._cors_only(response.raw_headers),
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # Starlette's body names what failed, e.g. "Disallowed CORS origin, method".
        reason = bytes(response.body).decode().removeprefix("Disallowed CORS ").strip() or "request"
        await deny(
            scope,
            send,
            403,
            "cors_forbidden",
            f"This cross-origin request is not allowed ({reason}).",
            self._cors_only(response.raw_headers),
        )

    @staticmethod
    def _cors_only(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Starlette's preflight headers without its plain-text body's own headers."""
        return [
            (name, value)
            for name, value in raw_headers
            if name.startswith(b"access-control-") or name == b"vary"
        ]
