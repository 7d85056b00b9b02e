"""Bearer tokens for the transports without HTTP middleware (gRPC, GraphQL)."""

from __future__ import annotations

from collections.abc import Mapping

from ..authenticators import AuthenticationError
from ..credentials import looks_like_jwt, split_bearer
from ..principal import Principal
from .keys import KeysUnavailable
from .verify import InvalidToken, TokenVerifier


class JwtAuthenticator:
    """``authorization: Bearer <jwt>`` metadata, checked exactly as the HTTP layer does."""

    name = "jwt"
    required = True

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def authenticate(self, metadata: Mapping[str, str]) -> Principal | None:
        raw = metadata.get("authorization")
        token = split_bearer(raw) if raw is not None else None
        if token is None or not looks_like_jwt(token):
            # Not a JWT: an API key, perhaps, for the next authenticator.
            return None
        try:
            claims = await self._verifier.verify_access(token)
        except InvalidToken as exc:
            raise AuthenticationError(exc.message) from None
        except KeysUnavailable:
            raise AuthenticationError(
                "The token cannot be checked right now; try again shortly."
            ) from None
        return Principal(kind="user", id=claims["sub"])
