"""``/api/v1/auth``: sign in (OAuth2 password flow), refresh, and who am I.

``/token`` takes the standard OAuth2 password form, so Swagger UI's *Authorize*
button signs in (``features/jwt.py`` documents the scheme). ``/token`` and ``/refresh``
are open (the JWT layer lets them through; the per-IP rate limit applies); ``/me``
needs a credential like every other route.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from ...errors import ERROR_RESPONSES, APIError
from ..principal import get_principal
from .middleware import claims_of
from .passwords import Passwords
from .tokens import RefreshRefused, TokenIssuer, TokenPair
from .users import UserStore, valid_username

SIGN_IN_PATH = "/auth/token"
REFRESH_PATH = "/auth/refresh"
CHALLENGE = {"WWW-Authenticate": "Bearer"}

log = structlog.get_logger("auth")


class TokenResponse(BaseModel):
    access_token: str = Field(
        description="Send as `Authorization: Bearer <access_token>`.",
        examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"],
    )
    token_type: Literal["bearer"] = Field(
        default="bearer", description="Always `bearer`.", examples=["bearer"]
    )
    expires_in: int = Field(description="Seconds the access token is valid.", examples=[900])
    refresh_token: str = Field(
        description="Exchange at `/api/v1/auth/refresh` for a new pair; works once.",
        examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2ln"],
    )
    refresh_expires_in: int = Field(
        description="Seconds the refresh token is valid.", examples=[1_209_600]
    )

    @classmethod
    def of(cls, pair: TokenPair) -> TokenResponse:
        return cls(
            access_token=pair.access_token,
            expires_in=pair.access_expires_in,
            refresh_token=pair.refresh_token,
            refresh_expires_in=pair.refresh_expires_in,
        )


class RefreshRequest(BaseModel):
    refresh_token: str = Field(
        max_length=8192,
        description="The refresh token of the last pair you received.",
        examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2ln"],
    )


class Identity(BaseModel):
    kind: Literal["api_key", "user"] = Field(
        description="How the caller authenticated.", examples=["user"]
    )
    id: str = Field(description="The user (`sub`) or API key ID.", examples=["alice"])
    claims: dict[str, Any] | None = Field(
        default=None,
        description="The verified claims of the bearer token, if one was used.",
        examples=[{"sub": "alice", "typ": "access", "exp": 1767226500}],
    )


def unauthorized(message: str) -> APIError:
    return APIError(401, "unauthorized", message, headers=CHALLENGE)


def issuing_router(issuer: TokenIssuer, users: UserStore, passwords: Passwords) -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post(
        SIGN_IN_PATH,
        response_model=TokenResponse,
        summary="Sign in with a username and password (OAuth2 password flow)",
        responses={status: ERROR_RESPONSES[status] for status in (400, 401, 422, 429)},
    )
    async def issue_token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenResponse:
        name = form.username
        stored = await users.password_hash(name) if valid_username(name) else None
        matches, new_hash = await passwords.verify(form.password, stored)
        if not matches:
            log.info("login.failed", user=name if valid_username(name) else None)
            raise unauthorized("Incorrect username or password.")
        if new_hash is not None:
            await users.set_password_hash(name, new_hash)
        return TokenResponse.of(await issuer.issue(name))

    @router.post(
        REFRESH_PATH,
        response_model=TokenResponse,
        summary="Exchange a refresh token for a new pair (the old one stops working)",
        responses={status: ERROR_RESPONSES[status] for status in (400, 401, 422, 429)},
    )
    async def refresh_token(body: RefreshRequest) -> TokenResponse:
        try:
            return TokenResponse.of(await issuer.rotate(body.refresh_token))
        except RefreshRefused as exc:
            raise unauthorized(exc.message) from None

    return router


def identity_router() -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.get(
        "/auth/me",
        response_model=Identity,
        summary="Who the credentials you sent belong to",
        responses={status: ERROR_RESPONSES[status] for status in (401, 429)},
    )
    async def who_am_i(request: Request) -> Identity:
        principal = get_principal(request.scope)
        if principal is None:
            raise unauthorized("Authentication is required.")
        return Identity(kind=principal.kind, id=principal.id, claims=claims_of(request.scope))

    return router
