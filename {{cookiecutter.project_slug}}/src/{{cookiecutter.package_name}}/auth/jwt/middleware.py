"""Bearer-token authentication for ``/api/v1``, HTTP and WebSocket (pure ASGI).

Sits just outside the API-key layer. A valid token sets the Principal
(``user:<sub>`` for the rate limiter) and puts its claims at
``scope["state"]["claims"]``. A request with no bearer token is passed on to the
API-key layer when API keys are configured and it carries ``X-API-Key``;
otherwise it is refused. The token routes themselves are open.

Browsers cannot set headers on a WebSocket, so a handshake may carry the token as
the subprotocol list ``["bearer", "<token>"]``; the token is removed from what the
app sees, and ``bearer`` is accepted as the subprotocol unless the app picks one.
An ``Origin`` allow-list guards the WebSocket against pages from other sites.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...asgi import get_header, in_prefix, state_of
from ...middleware import deny
from ..credentials import looks_like_jwt, split_bearer
from ..principal import Principal, set_principal
from .keys import KeysUnavailable
from .verify import MAX_TOKEN_BYTES, InvalidToken, TokenVerifier

SUBPROTOCOL = "bearer"
CLAIMS_STATE_KEY = "claims"
BEARER_CHALLENGE = (b"www-authenticate", b"Bearer")
INVALID_CHALLENGE = (b"www-authenticate", b'Bearer error="invalid_token"')
API_KEY_CHALLENGE = (b"www-authenticate", b'ApiKey header="X-API-Key"')

log = structlog.get_logger("auth")


@dataclass(frozen=True, slots=True)
class Credential:
    token: str
    via_subprotocol: bool


def find_credential(scope: Scope) -> Credential | None:
    """The bearer token of a request, from ``Authorization`` or the WebSocket subprotocols."""
    raw = get_header(scope, b"authorization")
    if raw is not None:
        if len(raw) > MAX_TOKEN_BYTES + 16:
            raise InvalidToken("authorization header too large")
        token = split_bearer(raw.decode("latin-1"))
        if token is not None:
            return Credential(token, via_subprotocol=False)
    if scope["type"] == "websocket":
        offered: list[str] = list(scope.get("subprotocols") or ())
        if SUBPROTOCOL in offered:
            position = offered.index(SUBPROTOCOL)
            token = offered[position + 1] if position + 1 < len(offered) else ""
            return Credential(token, via_subprotocol=True)
    return None


def drop_token(scope: Scope, token: str) -> None:
    """Keep the token out of what the app sees of the subprotocols.

    In place, like the state: outer layers read what the router leaves in the
    scope (the matched route), so the app must get this same scope.
    """
    scope["subprotocols"] = [item for item in scope.get("subprotocols") or () if item != token]


def accepting_bearer(send: Send) -> Send:
    """A browser drops a WebSocket whose handshake names none of its subprotocols."""

    async def send_accept(message: Message) -> None:
        if message["type"] == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": SUBPROTOCOL}
        await send(message)

    return send_accept


class JwtMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        api_prefix: str,
        public_paths: Collection[str] = (),
        api_keys_enabled: bool = False,
        ws_allowed_origins: Collection[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.api_prefix = api_prefix
        self.public_paths = frozenset(public_paths)
        self.api_keys_enabled = api_keys_enabled
        self.ws_allowed_origins = frozenset(ws_allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (
            (kind != "http" and kind != "websocket")
            or not in_prefix(scope["path"], self.api_prefix)
            or (kind == "http" and scope["path"] in self.public_paths)
        ):
            await self.app(scope, receive, send)
            return
        if kind == "websocket" and not self._origin_allowed(scope):
            log.warning("jwt.rejected", reason="origin", path=scope["path"])
            await deny(
                scope, send, 403, "forbidden", "WebSockets from this origin are not allowed."
            )
            return

        try:
            credential = find_credential(scope)
        except InvalidToken as exc:
            await self._refuse_invalid(scope, send, exc)
            return
        if (
            credential is not None
            and self.api_keys_enabled
            and not credential.via_subprotocol
            and not looks_like_jwt(credential.token)
        ):
            # A bearer value that is no JWT is an API key: the API-key layer checks it.
            await self.app(scope, receive, send)
            return
        if credential is None:
            if self.api_keys_enabled and get_header(scope, b"x-api-key") is not None:
                await self.app(scope, receive, send)
                return
            await self._refuse_anonymous(scope, send)
            return
        claims = await self._verify(scope, send, credential.token)
        if claims is None:
            return

        set_principal(scope, Principal(kind="user", id=claims["sub"]))
        state_of(scope)[CLAIMS_STATE_KEY] = claims
        if credential.via_subprotocol:
            drop_token(scope, credential.token)
            send = accepting_bearer(send)
        await self.app(scope, receive, send)

    def _origin_allowed(self, scope: Scope) -> bool:
        if not self.ws_allowed_origins:
            return True
        origin = get_header(scope, b"origin")
        # Browsers always send Origin on a WebSocket; a client without one is not a
        # page that another site could have opened, so the allow-list does not apply.
        if origin is None:
            return True
        return origin.decode("latin-1").strip().rstrip("/").lower() in self.ws_allowed_origins

    async def _verify(self, scope: Scope, send: Send, token: str) -> dict[str, Any] | None:
        """The token's claims, or ``None`` once the request has been refused."""
        try:
            return await self.verifier.verify_access(token)
        except InvalidToken as exc:
            await self._refuse_invalid(scope, send, exc)
        except KeysUnavailable:
            log.warning("jwt.keys_unavailable", path=scope["path"])
            await deny(
                scope,
                send,
                503,
                "unavailable",
                "The token cannot be checked right now; try again shortly.",
                [(b"retry-after", b"5")],
            )
        except Exception as exc:
            # Fail closed, never with a 500: whatever went wrong, this token is not accepted.
            log.error("jwt.verification_error", path=scope["path"], exc_info=exc)
            await deny(scope, send, 401, "unauthorized", InvalidToken.message, [INVALID_CHALLENGE])
        return None

    @staticmethod
    async def _refuse_invalid(scope: Scope, send: Send, exc: InvalidToken) -> None:
        log.info("jwt.rejected", reason=exc.reason, path=scope["path"])
        await deny(scope, send, 401, "unauthorized", exc.message, [INVALID_CHALLENGE])

    async def _refuse_anonymous(self, scope: Scope, send: Send) -> None:
        challenges = [BEARER_CHALLENGE]
        message = "A bearer token is required (Authorization: Bearer <token>)."
        if self.api_keys_enabled:
            challenges.append(API_KEY_CHALLENGE)
            message = (
                "Authentication is required: send a bearer token (a JWT or an API key) "
                "or an X-API-Key header."
            )
        await deny(scope, send, 401, "unauthorized", message, challenges)


def claims_of(scope: MutableMapping[str, Any]) -> dict[str, Any] | None:
    """The verified claims of the caller's token, if it authenticated with one."""
    state = scope.get("state") or {}
    claims = state.get(CLAIMS_STATE_KEY)
    return claims if isinstance(claims, dict) else None
