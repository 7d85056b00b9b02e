"""Helpers for the JWT tests: signing and forging tokens, key pairs, a real JWKS server."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import socket
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from {{cookiecutter.package_name}}.auth.jwt.passwords import Passwords
from {{cookiecutter.package_name}}.auth.jwt.user_db import UserDatabase
from {{cookiecutter.package_name}}.auth.jwt.users import SqliteUserStore

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import TEST_JWT_SECRET
from threaded_server import ThreadedServer

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def now() -> int:
    return int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_for(subject: str = "alice", ttl: int = 300, **extra: Any) -> dict[str, Any]:
    return {"sub": subject, "iat": now(), "exp": now() + ttl, **extra}


def hs_token(
    claims: dict[str, Any] | None = None,
    secret: str = TEST_JWT_SECRET,
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(claims or claims_for(), secret, algorithm="HS256", headers=headers)


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token built by hand, as an attacker would: no library refuses to make it."""
    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"


def forge_hmac(
    header: dict[str, Any], claims: dict[str, Any], secret: bytes, digest: str = "sha256"
) -> str:
    """An HMAC-signed token over any header and key, e.g. a public key's PEM as the
    secret, or a non-string kid (both of which PyJWT refuses to produce)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class KeyPair:
    """A private key and its public JWK, for the algorithm given."""

    def __init__(self, kid: str, algorithm: str = "RS256") -> None:
        self.kid = kid
        self.algorithm = algorithm
        private: PrivateKey
        if algorithm.startswith(("RS", "PS")):
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
        elif algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
            jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
        else:
            raise ValueError(algorithm)
        self.private = private
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "use": "sig", "alg": algorithm}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any] | None = None, **headers: Any) -> str:
        return jwt.encode(
            claims or claims_for(),
            self.private,
            algorithm=self.algorithm,
            headers={"kid": self.kid, **headers},
        )


class KeyServer(ThreadedServer):
    """A JWKS endpoint on a free loopback port, in its own thread, counting its hits.

    ``delay`` holds each answer back (until ``stop``); ``status`` other than 200
    answers with that error instead of the keys.
    """

    name = "jwks-server"

    def __init__(self, *keys: KeyPair) -> None:
        super().__init__()
        self.keys: list[dict[str, Any]] = [key.jwk for key in keys]
        self.delay = 0.0
        self.status = 200
        self.hits = 0
        self.app = Starlette(routes=[Route("/jwks.json", self._jwks)])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def publish(self, *keys: KeyPair) -> None:
        self.keys = [key.jwk for key in keys]

    async def _jwks(self, request: Request) -> Response:
        self.hits += 1
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline and not self.release.is_set():
            await asyncio.sleep(0.01)
        if self.status != 200:
            return JSONResponse({"error": "unavailable"}, status_code=self.status)
        return JSONResponse({"keys": self.keys})


async def add_user(users_file: str, name: str, password: str) -> None:
    """What ``auth.jwt.cli add-user`` does, without a process."""
    store = SqliteUserStore(UserDatabase(users_file))
    assert await store.add(name, await Passwords().hash(password))


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"
