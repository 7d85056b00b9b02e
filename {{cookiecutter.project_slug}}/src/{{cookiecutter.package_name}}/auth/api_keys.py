"""API keys, kept only as peppered HMAC-SHA256 digests.

The raw secrets are read once from the settings at start-up, digested and then
dropped, so a memory dump or a debug print of the store never shows a usable
key. A presented key is digested the same way and compared with
``hmac.compare_digest`` against every stored digest, so the time taken does not
depend on which key (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .principal import Principal

# Longer than any sane key; refusing early keeps hashing cost bounded.
MAX_KEY_LENGTH = 512


class KeyCheck(Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    tier: str | None
    digest: bytes
    revoked: bool


@dataclass(frozen=True, slots=True)
class KeyResult:
    check: KeyCheck
    principal: Principal | None = None
    key_id: str | None = None


def parse_entry(entry: str) -> tuple[str, str, str | None]:
    """``id:secret`` or ``id:secret:tier`` (already validated by the settings)."""
    parts = entry.split(":")
    key_id, secret = parts[0].strip(), parts[1].strip()
    tier = (parts[2].strip() or None) if len(parts) > 2 else None
    return key_id, secret, tier


def key_prefix(presented: str) -> str:
    """What logs may show of a presented key: enough to tell keys apart, useless to an attacker."""
    return presented[:4] + "..."


class ApiKeyStore:
    def __init__(
        self, entries: Iterable[str], *, pepper: bytes, revoked: Iterable[str] = ()
    ) -> None:
        self._pepper = pepper
        revoked_ids = {item.strip() for item in revoked}
        keys = []
        for entry in entries:
            key_id, secret, tier = parse_entry(entry)
            keys.append(StoredKey(key_id, tier, self.digest(secret), key_id in revoked_ids))
        self._keys: tuple[StoredKey, ...] = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def digest(self, secret: str) -> bytes:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).digest()

    def check(self, presented: str) -> KeyResult:
        if not presented or len(presented) > MAX_KEY_LENGTH:
            return KeyResult(KeyCheck.UNKNOWN)
        digest = self.digest(presented)
        found: StoredKey | None = None
        # No early exit: every stored digest is compared whatever matches.
        for key in self._keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            return KeyResult(KeyCheck.UNKNOWN)
        if found.revoked:
            return KeyResult(KeyCheck.REVOKED, key_id=found.id)
        return KeyResult(KeyCheck.OK, Principal("api_key", found.id, found.tier), key_id=found.id)
