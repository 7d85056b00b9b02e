"""CORS from the settings, on top of Starlette's pure-ASGI implementation.

Three things differ from Starlette: with no ``CORS_ORIGINS`` the layer is
skipped entirely (no CORS headers at all), a refused preflight answers 403
with the service's JSON error shape instead of a plain-text 400, and a simple
(non-preflight) response gets its headers from a plain ``send`` wrapper that
touches only the first message. Starlette's own policy decides every header:
the origin check, the preflight answer and the headers a simple response gets.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..asgi import get_header
from ..service_settings import ServiceSettings
from . import deny

ALLOW_METHODS = ("GET", "POST", "OPTIONS")
ALLOW_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID", "X-API-Key", "X-Request-ID")
EXPOSE_HEADERS = ("X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy")
MAX_AGE = 600

ORIGIN = b"origin"
REQUEST_METHOD = b"access-control-request-method"
ALLOW_ORIGIN = b"access-control-allow-origin"
VARY = b"vary"
VARY_ORIGIN = (VARY, b"Origin")

Header = tuple[bytes, bytes]


class CORSMiddleware(StarletteCORSMiddleware):
    def __init__(self, app: ASGIApp, *, settings: ServiceSettings) -> None:
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
        # Starlette's simple-response headers, as MutableHeaders would write them.
        self.simple_raw: list[Header] = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.simple_headers.items()
        ]
        # Every header name the simple response sets; the fast path needs none present.
        self.simple_names = frozenset({*(name for name, _ in self.simple_raw), ALLOW_ORIGIN, VARY})
        # What a response to a request without Origin, or with a given Origin, gets.
        self.no_origin_headers: list[Header] = [VARY_ORIGIN]
        self.origin_headers: dict[bytes, list[Header]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = get_header(scope, ORIGIN)
        if (
            origin is not None
            and scope["method"] == "OPTIONS"
            and get_header(scope, REQUEST_METHOD) is not None
        ):
            await self._preflight(scope, send, Headers(scope=scope))
            return
        extra = self.no_origin_headers if origin is None else self._headers_for(origin)
        started = False

        # Starlette's simple_response wraps send in a coroutine that every message of
        # a stream goes through; this plain function only edits the first message and
        # returns send's awaitable for the rest, like the other layers' wrappers.
        def send_with_cors(message: Message) -> Awaitable[None]:
            nonlocal started
            if started or message["type"] != "http.response.start":
                return send(message)
            started = True
            headers = message.get("headers", ())
            if not self.simple_names.isdisjoint(dict(headers)):
                # The app set a CORS or Vary header itself: Starlette merges them.
                return super(CORSMiddleware, self).send(message, send, Headers(scope=scope))
            message["headers"] = [*headers, *extra]
            return send(message)

        await self.app(scope, receive, send_with_cors)

    def _headers_for(self, origin: bytes) -> list[Header]:
        """What Starlette's ``send`` adds for this Origin to a response without CORS headers."""
        cached = self.origin_headers.get(origin)
        if cached is not None:
            return cached
        headers = list(self.simple_raw)
        allowed = self.is_allowed_origin(origin=origin.decode("latin-1"))
        if (self.allow_all_origins and self.allow_credentials) or (
            not self.allow_all_origins and allowed
        ):
            # Setting Access-Control-Allow-Origin replaces Starlette's "*" in place.
            names = [name for name, _ in headers]
            if ALLOW_ORIGIN in names:
                headers[names.index(ALLOW_ORIGIN)] = (ALLOW_ORIGIN, origin)
            else:
                headers.append((ALLOW_ORIGIN, origin))
        headers.append(VARY_ORIGIN)
        # Only listed origins are remembered, so the cache is as small as the settings.
        if allowed and not self.allow_all_origins:
            self.origin_headers[origin] = headers
        return headers

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
