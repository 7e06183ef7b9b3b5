"""API keys: their format, how one is made, hashed, parsed and checked (no I/O).

A key reads ``flk_<key id>_<secret>``. The key id is public: it names the key in
``farloom api-key list`` and in ``auth.api_keys``, so a presented key is looked up
by id. The secret is stored only as its SHA-256 and compared with
``hmac.compare_digest`` on the digests, so the time a comparison takes says
nothing about how much of a guess was right. The secret carries 256 bits from
``secrets``, which makes an unsalted fast hash enough: there is no dictionary to
try, unlike with passwords. (docs/design.md §2.10, "Authentication".)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "flk"
KEY_ID_BYTES = 8  # 16 hex characters: unique enough to be a primary key, short to read
ENTROPY_BYTES = 32  # of a secret: 256 bits of the operating system's randomness
# The id is lowercase hex (no "_"), so the first two "_" split the key unambiguously;
# token_urlsafe's alphabet may put "_" and "-" into the secret.
KEY_FORMAT = re.compile(r"flk_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})")
KEY_ID_FORMAT = re.compile(r"[0-9a-f]{16}")
BEARER = re.compile(r"Bearer[ \t]+(?P<token>\S+)[ \t]*", re.IGNORECASE)


@dataclass(frozen=True)
class ApiKey:
    """A key as its holder sees it; ``str(key)`` is what they send."""

    key_id: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}_{self.key_id}_{self.secret}"

    def __repr__(self) -> str:  # a key in a traceback or a debug line shows its id only
        return f"ApiKey(key_id={self.key_id!r}, secret=<hidden>)"


@dataclass(frozen=True)
class Caller:
    """Whom a request is served to: an advertiser (their data only) or everyone's data."""

    advertiser_id: str | None  # None: an admin key, or the open mode
    key_id: str | None  # None: the open mode (FARLOOM_API_OPEN=1)

    @property
    def is_admin(self) -> bool:
        return self.advertiser_id is None


OPEN = Caller(advertiser_id=None, key_id=None)


def generate() -> ApiKey:
    return ApiKey(secrets.token_hex(KEY_ID_BYTES), secrets.token_urlsafe(ENTROPY_BYTES))


def digest(secret: str) -> bytes:
    """What ``auth.api_keys.secret_sha256`` holds for a secret (32 bytes)."""
    return hashlib.sha256(secret.encode("ascii")).digest()


def parse(text: str) -> ApiKey | None:
    """The key ``text`` spells, or None when it is not one (wrong shape, length, alphabet)."""
    found = KEY_FORMAT.fullmatch(text)
    if found is None:
        return None
    return ApiKey(found["key_id"], found["secret"])


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (the scheme is
    case-insensitive, RFC 7235); None for a missing header or another scheme."""
    if authorization is None:
        return None
    found = BEARER.fullmatch(authorization.strip())
    return None if found is None else found["token"]


def matches(key: ApiKey, stored_digest: bytes) -> bool:
    """Whether ``key``'s secret is the one whose SHA-256 was stored, in constant time."""
    return hmac.compare_digest(digest(key.secret), stored_digest)
