"""API keys as a FastAPI dependency: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

Roles: ``admin`` may do everything; ``door`` only decisions (verify, identify,
compare). No key, an unknown key or a revoked key: 401; a door key on an admin
endpoint: 403. Keys live in the gallery's file as salted scrypt hashes
(:mod:`facegate.gallery.keys`); a process remembers the keys it has checked (a
hash of them), but looks their row up on every request, so a key revoked from the
command line or another worker stops working at once.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from facegate.gallery.audit import Event
from facegate.gallery.backends import is_url, open_existing
from facegate.gallery.keys import ApiKey, check_key, get_key, key_id_of
from facegate.gallery.store import BUSY_TIMEOUT_MS, damage_as_gallery_error
from facegate.service.problems import ServiceError

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`facegate keys create`).")
bearer = HTTPBearer(auto_error=False, description="The same API key, as `Authorization: Bearer KEY`.")

#: checked keys a process remembers (by hash), at most
REMEMBERED = 1024


class KeyRing:
    """A process's view of the gallery's API keys, on a connection of its own (used from any thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._store = None  # a server's gallery: its own store (connection); a file: a plain SQLite connection
        if is_url(path):
            self._store = open_existing(path)
        else:
            with damage_as_gallery_error(path):
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._lock = threading.Lock()
        self._checked: dict[bytes, str] = {}  # sha256 of a good key -> its id

    @contextmanager
    def _reading(self):
        if self._store is not None:
            with self._store.reading() as db:
                yield db
        else:
            with damage_as_gallery_error(self.path):
                yield self._db

    def find(self, key: str) -> ApiKey | None:
        """The record of ``key`` (active or revoked), or None when it is not one of the gallery's keys."""
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock, self._reading() as db:
            key_id = self._checked.get(digest)
            if key_id is not None and key_id == key_id_of(key):
                return get_key(db, key_id)
            record = check_key(db, key)
            if record is not None and len(self._checked) < REMEMBERED:
                self._checked[digest] = record.id
            return record

    def close(self) -> None:
        (self._store or self._db).close()


@dataclass(frozen=True)
class Caller:
    """Who is asking: their key and address."""

    key_id: str
    label: str
    role: str
    client: str | None

    def source(self, request: Request) -> Event:
        """The audit event's who and where for a request of this caller."""
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        return Event(endpoint=f"{request.method} {path}", key_label=self.label, client=self.client)


def authenticate(
    request: Request,
    key: Annotated[str | None, Security(api_key_header)] = None,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Caller:
    """The caller of any endpoint that needs a key (a plain function: FastAPI runs it off the event loop)."""
    presented = key or (credentials.credentials if credentials is not None else None)
    challenge = {"WWW-Authenticate": "Bearer"}
    if not presented:
        raise ServiceError(
            401, "Unauthorized", "an API key is required (X-API-Key or Authorization: Bearer)", challenge
        )
    record = request.app.state.keyring.find(presented.strip())
    if record is None:
        raise ServiceError(401, "Unauthorized", "unknown API key", challenge)
    if not record.active:
        raise ServiceError(
            401, "Unauthorized", f"this API key ({record.id}) was revoked at {record.revoked_at}", challenge
        )
    return Caller(record.id, record.label, record.role, request.client.host if request.client else None)


def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    if caller.role != "admin":
        raise ServiceError(403, "Forbidden", f"a {caller.role} key may only verify, identify and compare")
    return caller


#: any valid key: decisions
DoorCaller = Annotated[Caller, Depends(authenticate)]
#: an admin key: people, events, keys, metrics
AdminCaller = Annotated[Caller, Depends(require_admin)]
