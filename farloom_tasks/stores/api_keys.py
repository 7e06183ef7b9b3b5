"""``auth.api_keys`` (migration 0011): create, list, revoke and look up API keys.

Creating and revoking run as the owner (``farloom api-key``, FARLOOM_DATABASE_URL);
the API looks keys up through its read-only role, which may SELECT this table and
change nothing. A revoked key keeps its row, with when it was revoked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import sqlalchemy as sa

from farloom_tasks.errors import ConfigError

UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a relation that does not exist


@dataclass(frozen=True)
class StoredKey:
    """What the API needs to judge a presented key (never the secret: its digest)."""

    key_id: str
    secret_sha256: bytes
    advertiser_id: str | None
    revoked: bool


@dataclass(frozen=True)
class ListedKey:
    """A row of ``farloom api-key list``: no secret, no digest."""

    key_id: str
    advertiser_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


class Revocation(Enum):
    REVOKED = "revoked"
    ALREADY_REVOKED = "already revoked"
    UNKNOWN = "unknown"


@contextmanager
def table_required() -> Iterator[None]:
    """A database not migrated to 0011 yet gets a sentence, not a traceback."""
    try:
        yield
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "pgcode", None) == UNDEFINED_TABLE:
            raise ConfigError("this database has no auth.api_keys yet: run `farloom migrate` "
                              "(migration 0011)") from None
        raise


def create(conn: sa.Connection, *, key_id: str, secret_sha256: bytes,
           advertiser_id: str | None, label: str) -> None:
    """Store a key: an advertiser's, or an admin key when ``advertiser_id`` is None."""
    conn.execute(sa.text("""
        INSERT INTO auth.api_keys (key_id, secret_sha256, advertiser_id, is_admin, label)
        VALUES (:key_id, :digest, :advertiser_id, :is_admin, :label)
    """), {"key_id": key_id, "digest": secret_sha256, "advertiser_id": advertiser_id,
           "is_admin": advertiser_id is None, "label": label})


def listed(conn: sa.Connection) -> list[ListedKey]:
    rows = conn.execute(sa.text("""
        SELECT key_id, advertiser_id, label, created_at, revoked_at FROM auth.api_keys
        ORDER BY created_at, key_id
    """))
    return [ListedKey(row.key_id, row.advertiser_id, row.label, row.created_at,
                      row.revoked_at) for row in rows]


def revoke(conn: sa.Connection, key_id: str) -> Revocation:
    """Mark the key revoked now; a second revocation keeps the first one's time."""
    revoked = conn.execute(sa.text("""
        UPDATE auth.api_keys SET revoked_at = now()
        WHERE key_id = :key_id AND revoked_at IS NULL RETURNING key_id
    """), {"key_id": key_id}).first()
    if revoked is not None:
        return Revocation.REVOKED
    exists = conn.execute(sa.text("SELECT 1 FROM auth.api_keys WHERE key_id = :key_id"),
                          {"key_id": key_id}).first()
    return Revocation.ALREADY_REVOKED if exists else Revocation.UNKNOWN


def lookup(conn: sa.Connection, key_id: str) -> StoredKey | None:
    row = conn.execute(sa.text("""
        SELECT key_id, secret_sha256, advertiser_id, revoked_at IS NOT NULL AS revoked
        FROM auth.api_keys WHERE key_id = :key_id
    """), {"key_id": key_id}).first()
    if row is None:
        return None
    return StoredKey(row.key_id, bytes(row.secret_sha256), row.advertiser_id,
                     bool(row.revoked))
