"""Reading credentials out of an ``Authorization`` value.

OpenAI's and Anthropic's clients send their API key as ``Authorization: Bearer
<key>``; a JWT travels the same way. A bearer value shaped like a JWT (three
base64url segments) is a token when JWTs are accepted, anything else a key.
"""

from __future__ import annotations

import re

JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def split_bearer(value: str) -> str | None:
    """The credential of an ``Authorization: Bearer <credential>`` value; ``None`` otherwise."""
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def looks_like_jwt(credential: str) -> bool:
    return JWT_SHAPE.fullmatch(credential) is not None
