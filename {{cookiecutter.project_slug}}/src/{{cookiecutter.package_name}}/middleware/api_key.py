"""API-key authentication for the versioned API, HTTP and WebSocket.

The key comes in ``X-API-Key`` or, as OpenAI's and Anthropic's clients send it,
``Authorization: Bearer <key>``.

Active only when ``API_KEYS`` is configured. Health, metrics and the docs live
outside ``/api/v1`` and stay open. A caller already authenticated by an earlier
layer (a Principal in the scope state) is let through.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from ..asgi import get_header, in_prefix
from ..auth.api_keys import ApiKeyStore, KeyCheck, key_prefix
from ..auth.credentials import split_bearer
from ..auth.principal import get_principal, set_principal
from . import deny

HEADER = b"x-api-key"
QUERY_NAMES = frozenset({"api_key", "key", "apikey", "api-key"})
CHALLENGE = [
    (b"www-authenticate", b'Bearer realm="api"'),
    (b"www-authenticate", b'ApiKey header="X-API-Key"'),
]
MISSING = "An API key is required: send Authorization: Bearer <key> or an X-API-Key header."

log = structlog.get_logger("auth")


def key_in_query(query_string: bytes) -> bool:
    if not query_string:
        return False
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return any(name.lower() in QUERY_NAMES for name, _ in pairs)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, store: ApiKeyStore | None, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = self.store
        if (
            store is None
            or scope["type"] not in ("http", "websocket")
            or not in_prefix(scope["path"], self.api_prefix)
            or get_principal(scope) is not None
        ):
            await self.app(scope, receive, send)
            return

        if key_in_query(scope.get("query_string", b"")):
            log.warning("api_key.rejected", reason="in_query", path=scope["path"])
            await deny(
                scope,
                send,
                400,
                "api_key_in_url",
                "Send the API key in the X-API-Key header, never in the URL: URLs end up in logs.",
            )
            return

        raw = get_header(scope, HEADER)
        if raw is None:
            authorization = get_header(scope, b"authorization")
            bearer = split_bearer(authorization.decode("latin-1")) if authorization else None
            if not bearer:
                await deny(scope, send, 401, "unauthorized", MISSING, CHALLENGE)
                return
            presented = bearer
        else:
            presented = raw.decode("latin-1").strip()
        result = store.check(presented)
        if result.check is KeyCheck.OK and result.principal is not None:
            set_principal(scope, result.principal)
            await self.app(scope, receive, send)
            return
        if result.check is KeyCheck.REVOKED:
            log.warning("api_key.rejected", reason="revoked", key_id=result.key_id)
            message = "This API key has been revoked."
        else:
            log.warning("api_key.rejected", reason="unknown", key_prefix=key_prefix(presented))
            message = "The API key is not valid."
        await deny(scope, send, 401, "unauthorized", message, CHALLENGE)
