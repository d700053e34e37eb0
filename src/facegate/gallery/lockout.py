"""Lockout of door checks after refusals in a row (NIST SP 800-63B's throttling).

After ``attempts`` refused door checks in a row for the same claimed name, each
within ``window`` seconds of now, the name is locked for ``duration`` seconds:
door checks for it are refused without matching until the lock expires or an admin
unlocks it. The state is read from the audit log (``events``), not kept in memory,
so every process serving the gallery agrees. A lock, an unlock and a refusal while
locked are events themselves; an accepted check, a lock or an unlock ends a run of
refusals.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from facegate.gallery.audit import Event, default_source, insert_event, iso, now


@dataclass(frozen=True)
class LockoutPolicy:
    attempts: int = 3
    #: seconds within which the refusals must all fall
    window: float = 600.0
    #: seconds a lock lasts
    duration: float = 900.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.window <= 0 or self.duration <= 0:
            raise ValueError("a lockout needs at least 1 attempt and a positive window and duration")

    def to_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "window_s": self.window, "duration_s": self.duration}


@dataclass(frozen=True)
class LockState:
    name: str
    locked: bool
    until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "locked": self.locked, "until": self.until}


def _last(db: sqlite3.Connection, name: str, kind: str) -> tuple[int, str | None]:
    row = db.execute(
        "SELECT id, json_extract(detail, '$.until') FROM events WHERE name = ? AND kind = ? ORDER BY id DESC LIMIT 1",
        (name, kind),
    ).fetchone()
    return (0, None) if row is None else (int(row[0]), row[1])


def lock_state(db: sqlite3.Connection, name: str, moment: datetime | None = None) -> LockState:
    """Whether door checks for ``name`` are locked now, and until when."""
    lock_id, until = _last(db, name, "lock")
    unlock_id, _ = _last(db, name, "unlock")
    if lock_id > unlock_id and until is not None and until > iso(moment or now()):
        return LockState(name, True, until)
    return LockState(name, False)


def locked_names(db: sqlite3.Connection, moment: datetime | None = None) -> dict[str, str]:
    """Every name locked now, with the time its lock ends."""
    rows = db.execute(
        "SELECT name, kind, json_extract(detail, '$.until') FROM events WHERE id IN "
        "(SELECT MAX(id) FROM events WHERE kind IN ('lock', 'unlock') GROUP BY name)"
    ).fetchall()
    current = iso(moment or now())
    return {name: until for name, kind, until in rows if kind == "lock" and until is not None and until > current}


def refusals_in_a_row(db: sqlite3.Connection, name: str, policy: LockoutPolicy, moment: datetime | None = None) -> int:
    """How many of the latest door checks for ``name`` were refused in a row within the policy's window."""
    moment = moment or now()
    barrier = max(_last(db, name, "lock")[0], _last(db, name, "unlock")[0])
    rows = db.execute(
        "SELECT outcome, time FROM events WHERE name = ? AND kind = 'verify' AND id > ? ORDER BY id DESC LIMIT ?",
        (name, barrier, policy.attempts),
    ).fetchall()
    oldest = iso(moment - timedelta(seconds=policy.window))
    count = 0
    for outcome, time in rows:
        if outcome != "refused" or time < oldest:
            break
        count += 1
    return count


def lock_if_due(
    db: sqlite3.Connection,
    name: str,
    policy: LockoutPolicy,
    event: Event | None = None,
    moment: datetime | None = None,
) -> LockState:
    """After a refusal (inside its transaction): lock ``name`` when the run of refusals reaches the policy's count."""
    moment = moment or now()
    refusals = refusals_in_a_row(db, name, policy, moment)
    if refusals < policy.attempts:
        return LockState(name, False)
    until = iso(moment + timedelta(seconds=policy.duration))
    detail = {"until": until, "refusals": refusals, **policy.to_dict()}
    source = event or default_source()
    insert_event(db, source.filled(kind="lock", outcome="locked", name=name, detail=detail), moment=moment)
    return LockState(name, True, until)


def unlock(db: sqlite3.Connection, name: str, event: Event | None = None) -> bool:
    """Lift ``name``'s lock (inside the caller's transaction, with its event); False when it was not locked."""
    state = lock_state(db, name)
    if not state.locked:
        return False
    source = event or default_source()
    insert_event(
        db, source.filled(kind="unlock", outcome="unlocked", name=name, detail={"was_locked_until": state.until})
    )
    return True


__all__ = ["LockState", "LockoutPolicy", "lock_if_due", "lock_state", "locked_names", "refusals_in_a_row", "unlock"]
