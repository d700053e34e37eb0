"""What each request does with the gallery, run on the gallery's thread (:mod:`.runner`).

No face logic lives here: decisions are the library's (``Gallery.verify_identity``,
``Gallery.identify``, ``facegate.verify``), with the gallery's operating points. This
module adds what a service needs around them: the audit event of each decision and
change, the lockout of door checks, and photos kept when the operator opted in.
``source`` is the event that says who asked (endpoint, key label, client).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from facegate.errors import LockedOutError
from facegate.gallery import Gallery
from facegate.gallery.audit import Event, EventQuery, decision_fields, insert_event, kept_photo, query_events
from facegate.gallery.gallery import check_name
from facegate.gallery.keys import create_key, list_keys, revoke_key
from facegate.gallery.lockout import LockState, lock_if_due, lock_state, locked_names, unlock
from facegate.service.settings import ServeSettings
from facegate.verification import verify


def sha256s(photos: Sequence[bytes]) -> str:
    return ",".join(hashlib.sha256(p).hexdigest() for p in photos)


def _probe(photos: Sequence[bytes]) -> bytes | list[bytes]:
    """One photo, or several frames of one face (fused by the gallery)."""
    return photos[0] if len(photos) == 1 else list(photos)


# -- decisions ------------------------------------------------------------------------------
def refuse_if_locked(
    gallery: Gallery, source: Event, kind: str, name: str, photos: Sequence[bytes], keep: float
) -> None:
    """While ``name``'s door checks are locked: record the attempt (a ``kind`` event) and raise LockedOutError."""
    with gallery.store.reading() as db:
        state = lock_state(db, name)
    if state.locked:
        event = source.filled(kind=kind, outcome="locked", name=name, photo_sha256=sha256s(photos))
        gallery.store.record(event, photos, keep)
        raise LockedOutError(
            f"door checks for {name!r} are locked until {state.until} after too many refusals in a row; "
            "an admin can unlock them",
            name,
            state.until,
        )


def door_check(
    gallery: Gallery, settings: ServeSettings, source: Event, name: str, photos: Sequence[bytes]
) -> dict[str, Any]:
    """The door check, refused without matching while ``name`` is locked; a refusal may lock it."""
    name = check_name(name)
    store = gallery.store
    store.person_id(name)  # an unknown name is a 404, before anything else
    keep = settings.keep_photos_days
    refuse_if_locked(gallery, source, "verify", name, photos, keep)
    result = gallery.verify_identity(_probe(photos), name)
    with store.transaction() as db:
        event = source.filled(
            kind="verify", name=name, photo_sha256=sha256s(photos), **decision_fields(result, "verify")
        )
        insert_event(db, event, photos, keep)
        lock = LockState(name, False) if result.verified else lock_if_due(db, name, settings.lockout, source)
    return {**result.to_dict(), "locked": lock.locked, "locked_until": lock.until}


def identify(
    gallery: Gallery, settings: ServeSettings, source: Event, photos: Sequence[bytes], top_k: int
) -> dict[str, Any]:
    result = gallery.identify(_probe(photos), top_k=top_k)
    event = source.filled(kind="identify", photo_sha256=sha256s(photos), **decision_fields(result, "identify"))
    gallery.store.record(event, photos, settings.keep_photos_days)
    return result.to_dict()


def compare(gallery: Gallery, settings: ServeSettings, source: Event, img1: bytes, img2: bytes) -> dict[str, Any]:
    """1:1 of two photos, with the gallery's model, detector and door operating point (no gallery search)."""
    result = verify(img1, img2, gallery.model, gallery.detector, gallery.metric_name, tta=gallery.tta, fmr=settings.fmr)
    event = source.filled(kind="compare", photo_sha256=sha256s([img1, img2]), **decision_fields(result, "compare"))
    gallery.store.record(event, [img1, img2], settings.keep_photos_days)
    return result.to_dict()


# -- people ---------------------------------------------------------------------------------
def people(gallery: Gallery) -> dict[str, Any]:
    with gallery.store.reading() as db:
        locks = locked_names(db)
    records = [{**r.to_dict(), "locked_until": locks.get(r.name)} for r in gallery.people()]
    return {"people": records, "state": gallery.state().to_dict(), "model": gallery.model_name}


def enroll(gallery: Gallery, source: Event, name: str, photos: Sequence[bytes]) -> dict[str, Any]:
    return gallery.enroll(name, list(photos), event=source).to_dict()


def add_photos(gallery: Gallery, source: Event, name: str, photos: Sequence[bytes]) -> dict[str, Any]:
    return gallery.add_photos(name, list(photos), event=source).to_dict()


def rename(gallery: Gallery, source: Event, old: str, new: str) -> dict[str, Any]:
    gallery.rename(old, new, event=source)
    return {"old": old, "new": new}


def remove(gallery: Gallery, source: Event, name: str) -> dict[str, Any]:
    return {"name": name, "templates_removed": gallery.remove(name, event=source)}


def unlock_person(gallery: Gallery, source: Event, name: str) -> dict[str, Any]:
    name = check_name(name)
    gallery.store.person_id(name)
    with gallery.store.transaction() as db:
        was_locked = unlock(db, name, source)
    return {"name": name, "unlocked": was_locked, "locked": False}


# -- the audit log and the keys -----------------------------------------------------------------
def events(gallery: Gallery, query: EventQuery) -> dict[str, Any]:
    with gallery.store.reading() as db:
        found, next_before = query_events(db, query)
    return {"events": [e.to_dict() for e in found], "next_before": next_before}


def event_photo(gallery: Gallery, event_id: int, position: int) -> bytes | None:
    with gallery.store.reading() as db:
        return kept_photo(db, event_id, position)


def keys(gallery: Gallery) -> dict[str, Any]:
    with gallery.store.reading() as db:
        return {"keys": [k.to_dict() for k in list_keys(db)]}


def new_key(gallery: Gallery, source: Event, role: str, label: str | None) -> dict[str, Any]:
    with gallery.store.transaction() as db:
        record, key = create_key(db, role, label, source)
    return {**record.to_dict(), "key": key}


def drop_key(gallery: Gallery, source: Event, key_id: str) -> dict[str, Any]:
    with gallery.store.transaction() as db:
        return revoke_key(db, key_id, source).to_dict()
