"""Liveness by challenge in the service: a challenge issued for a claimed name, then the frames that answer it.

The challenge lives in the gallery's audit log, which every worker process shares: issuing
one appends a ``liveness_challenge`` event (``issued``; the action, the expiry and a hash of a
secret nonce), and its id is ``EVENT_ID.NONCE``. Answering it first marks it ``used`` in the
same write transaction that checks it was issued, unexpired and not used yet (SQLite's
``BEGIN IMMEDIATE`` serialises that across processes), so a challenge is answered once; the
frames are then judged (:class:`~facegate.live.liveness.LivenessCheck`) and the decision
appended as a ``liveness`` event, like every door check, with the door's lockout.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from facegate.gallery import Gallery
from facegate.gallery.audit import Event, EventQuery, insert_event, iso, now, query_events
from facegate.gallery.gallery import check_name
from facegate.gallery.lockout import LockState, lock_if_due
from facegate.live.liveness import CHALLENGE_TTL_S, DEFAULT_SECONDS, LivenessCheck, get_challenge, new_challenge
from facegate.service.operations import refuse_if_locked, sha256s
from facegate.service.problems import ServiceError
from facegate.service.settings import ServeSettings

ISSUED, USED = "issued", "used"


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def issue(gallery: Gallery, source: Event, name: str, challenge: str | None = None) -> dict[str, Any]:
    """A new challenge for ``name``: its id, the action (random unless given) and when it expires."""
    name = check_name(name)
    gallery.store.person_id(name)  # an unknown name is a 404
    action = challenge or new_challenge()
    get_challenge(action)  # an unknown action is a 422
    nonce = secrets.token_urlsafe(18)
    expires = now() + timedelta(seconds=CHALLENGE_TTL_S)
    detail = {"challenge": action, "expires_at": iso(expires), "nonce_sha256": _digest(nonce)}
    with gallery.store.transaction() as db:
        event_id = insert_event(db, source.filled(kind="liveness_challenge", outcome=ISSUED, name=name, detail=detail))
    return {
        "id": f"{event_id}.{nonce}",
        "name": name,
        "challenge": action,
        "prompt": get_challenge(action).prompt,
        "expires_at": iso(expires),
        "seconds": DEFAULT_SECONDS,
    }


def _claim(gallery: Gallery, source: Event, challenge_id: str) -> Event:
    """The issued challenge ``challenge_id``, marked used; a 404, 409 or 410 when it cannot be answered."""
    event_id, _, nonce = challenge_id.partition(".")
    if not event_id.isdigit() or not nonce:
        raise ServiceError(404, "ChallengeNotFound", "no such challenge")
    with gallery.store.transaction() as db:
        found, _ = query_events(db, EventQuery(kind="liveness_challenge", before=int(event_id) + 1, limit=1))
        issued = found[0] if found and found[0].id == int(event_id) and found[0].outcome == ISSUED else None
        if issued is None or not hmac.compare_digest(issued.detail.get("nonce_sha256", ""), _digest(nonce)):
            raise ServiceError(404, "ChallengeNotFound", "no such challenge")
        if datetime.fromisoformat(issued.detail["expires_at"]) < now():
            raise ServiceError(410, "ChallengeExpired", f"the challenge expired at {issued.detail['expires_at']}")
        since = issued.time
        used, _ = query_events(db, EventQuery(kind="liveness_challenge", outcome=USED, since=since, limit=1000))
        if any(e.detail.get("challenge_event") == issued.id for e in used):
            raise ServiceError(409, "ChallengeUsed", "the challenge was already answered: ask for a new one")
        insert_event(
            db,
            source.filled(
                kind="liveness_challenge", outcome=USED, name=issued.name, detail={"challenge_event": issued.id}
            ),
        )
    return issued


def answer(
    gallery: Gallery,
    settings: ServeSettings,
    source: Event,
    challenge_id: str,
    frames: Sequence[bytes],
    times: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Judge the frames answering a challenge (once), with the door's lockout and an audit event."""
    issued = _claim(gallery, source, challenge_id)
    name, action = str(issued.name), str(issued.detail["challenge"])
    store, keep = gallery.store, settings.keep_photos_days
    refuse_if_locked(gallery, source, "liveness", name, frames, keep)
    given = list(frames) if times is None else list(zip(frames, times, strict=True))
    result = LivenessCheck(gallery).judge(given, name, action)
    point = f"FMR {result.target_fmr:g}" if result.target_fmr is not None else None
    event = source.filled(
        kind="liveness",
        outcome="accepted" if result.accepted else "refused",
        name=name,
        distance=result.distance,
        threshold=result.threshold,
        operating_point=point,
        photo_sha256=sha256s(frames),
        detail={"challenge": action, "challenge_event": issued.id, "live": result.live, "reason": result.reason},
    )
    with store.transaction() as db:
        insert_event(db, event, frames, keep)
        lock = LockState(name, False) if result.accepted else lock_if_due(db, name, settings.lockout, source)
    return {**result.to_dict(), "challenge_id": challenge_id, "locked": lock.locked, "locked_until": lock.until}
