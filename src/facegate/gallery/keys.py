"""API keys of the service, kept in the gallery's file as salted scrypt hashes.

A key reads ``fg_<id>_<secret>``: the id (8 hex digits) finds its row, the secret
(32 random bytes, URL-safe base64) is never stored: only ``scrypt(key, salt)`` with
a per-key salt, compared in constant time. A key is shown once, when it is made.
Creating and revoking a key are audit events, written in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from facegate.errors import ApiKeyNotFoundError, GalleryError
from facegate.gallery.audit import Event, default_source, insert_event, iso, now

#: what each role may do: admin everything; door only decisions (verify, identify, compare)
ROLES = ("admin", "door")

#: scrypt's cost: about 16 MiB and a few tens of milliseconds per check (the service remembers good keys)
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

_KEY = re.compile(r"^fg_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class ApiKey:
    """A key's public record (never its secret)."""

    id: str
    label: str
    role: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "role": self.role,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
        }


def _hash(key: str, salt: bytes) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, maxmem=64 * 1024 * 1024, **SCRYPT)


def create_key(
    db: sqlite3.Connection, role: str, label: str | None = None, event: Event | None = None
) -> tuple[ApiKey, str]:
    """Make a key of ``role`` (inside the caller's transaction, with its event): its record and the key itself."""
    if role not in ROLES:
        raise GalleryError(f"unknown role {role!r}: a key is {' or '.join(ROLES)}")
    label = (label or "").strip() or f"{role} key"
    for _ in range(10):
        key_id = secrets.token_hex(4)
        if db.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone() is None:
            break
    else:  # pragma: no cover - 10 collisions among 4 billion ids
        raise GalleryError("could not find a free key id; try again")
    key = f"fg_{key_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    created = iso(now())
    db.execute(
        "INSERT INTO api_keys (id, label, role, salt, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, label, role, salt, _hash(key, salt), created),
    )
    source = event or default_source()
    insert_event(
        db, source.filled(kind="key_created", outcome="done", detail={"key_id": key_id, "role": role, "label": label})
    )
    return ApiKey(key_id, label, role, created), key


def revoke_key(db: sqlite3.Connection, key_id: str, event: Event | None = None) -> ApiKey:
    """Revoke a key by its id (inside the caller's transaction, with its event); revoking twice is an error."""
    record = get_key(db, key_id)
    if record is None:
        raise ApiKeyNotFoundError(f"there is no API key {key_id!r} (see `facegate keys list`)")
    if not record.active:
        raise GalleryError(f"the API key {key_id} was already revoked at {record.revoked_at}")
    revoked = iso(now())
    db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (revoked, key_id))
    source = event or default_source()
    detail = {"key_id": key_id, "role": record.role, "label": record.label}
    insert_event(db, source.filled(kind="key_revoked", outcome="done", detail=detail))
    return ApiKey(record.id, record.label, record.role, record.created_at, revoked)


def get_key(db: sqlite3.Connection, key_id: str) -> ApiKey | None:
    row = db.execute("SELECT id, label, role, created_at, revoked_at FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else ApiKey(*row)


def list_keys(db: sqlite3.Connection) -> list[ApiKey]:
    rows = db.execute("SELECT id, label, role, created_at, revoked_at FROM api_keys ORDER BY created_at, id").fetchall()
    return [ApiKey(*row) for row in rows]


def active_keys(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0])


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else None."""
    match = _KEY.match(key or "")
    return match[1] if match else None


def check_key(db: sqlite3.Connection, key: str) -> ApiKey | None:
    """The record of ``key`` if it is one of this gallery's keys (active or revoked), else None."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    row = db.execute("SELECT salt, hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None or not hmac.compare_digest(_hash(key, bytes(row[0])), bytes(row[1])):
        return None
    return get_key(db, key_id)


__all__ = ["ROLES", "ApiKey", "check_key", "create_key", "get_key", "key_id_of", "list_keys", "revoke_key"]
