"""Transport-agnostic authentication for transports without the HTTP middleware.

HTTP requests are authenticated by middleware; another transport reads
credentials from its call metadata or a connection payload instead, and asks the
same authenticators. Metadata keys are lower-case header names such as
``x-api-key`` and ``authorization``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .api_keys import ApiKeyStore, KeyCheck
from .credentials import split_bearer
from .principal import Principal


class AuthenticationError(Exception):
    """Credentials were required, or presented and refused. The message is safe to show."""

    def __init__(self, message: str = "Authentication is required.") -> None:
        super().__init__(message)
        self.message = message


class Authenticator(Protocol):
    name: str
    # Whether callers presenting no credential at all are refused.
    required: bool

    async def authenticate(self, metadata: Mapping[str, str]) -> Principal | None:
        """The caller, or ``None`` when this kind of credential is absent.

        Raises ``AuthenticationError`` when the credential is present but invalid.
        """
        ...


class ApiKeyAuthenticator:
    """``x-api-key`` (or ``authorization: Bearer <key>``) metadata, checked against the
    same HMAC digests as the HTTP layer."""

    name = "api_key"
    required = True

    def __init__(self, store: ApiKeyStore) -> None:
        self._store = store

    async def authenticate(self, metadata: Mapping[str, str]) -> Principal | None:
        presented = metadata.get("x-api-key")
        if presented is None:
            authorization = metadata.get("authorization")
            presented = split_bearer(authorization) if authorization is not None else None
        if presented is None:
            return None
        result = self._store.check(presented.strip())
        if result.check is KeyCheck.OK and result.principal is not None:
            return result.principal
        if result.check is KeyCheck.REVOKED:
            raise AuthenticationError("This API key has been revoked.")
        raise AuthenticationError("The API key is not valid.")


async def authenticate(
    authenticators: Sequence[Authenticator], metadata: Mapping[str, str]
) -> Principal | None:
    """The first authenticator that recognises a credential decides.

    With no credential at all, the caller is anonymous unless an authenticator
    requires one.
    """
    for authenticator in authenticators:
        principal = await authenticator.authenticate(metadata)
        if principal is not None:
            return principal
    if any(authenticator.required for authenticator in authenticators):
        raise AuthenticationError()
    return None
