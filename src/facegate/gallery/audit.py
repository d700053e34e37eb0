"""The audit log: an append-only ``events`` table in the gallery's own SQLite file.

Every decision (door check, identification, comparison) and every change to the
people (enrol, add photos, rename, remove), to the API keys (created, revoked) and
to a name's lockout (lock, unlock) is one row. A change's row is written in the same
transaction as the change itself, so the log never says something happened that
did not, nor misses something that did. A row holds who asked (key label, client
address, endpoint), about whom (the claimed or found name), what came of it
(outcome, best distance, threshold and the operating point it met) and the photo's
SHA-256: never the photo itself, unless the operator keeps photos for a set number
of days (``kept_photos``, purged when they expire).

Times are UTC ISO 8601 with milliseconds, so text order is time order.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from facegate.errors import GalleryError

#: kinds of events
DECISIONS = ("verify", "identify", "compare")
CHANGES = ("enroll", "add_photos", "rename", "remove", "key_created", "key_revoked", "lock", "unlock")

EVENT_COLUMNS = (
    "time",
    "kind",
    "outcome",
    "name",
    "endpoint",
    "key_label",
    "client",
    "distance",
    "threshold",
    "operating_point",
    "photo_sha256",
    "detail",
)


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """A moment as the log writes it: UTC, milliseconds, ``+00:00``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Event:
    """One row of the audit log.

    As the ``event`` argument of a gallery's write methods it says who asked and
    from where (``endpoint``, ``key_label``, ``client``); the gallery fills in what
    happened (kind, name, outcome, photos).
    """

    kind: str = ""
    outcome: str = ""
    name: str | None = None
    endpoint: str | None = None
    key_label: str | None = None
    client: str | None = None
    distance: float | None = None
    threshold: float | None = None
    #: the error rate the decision's threshold was chosen for: "FMR 0.001", "FPIR 0.01", "threshold 0.4"
    operating_point: str | None = None
    #: hex SHA-256 of the photo (several: joined with ",")
    photo_sha256: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: str | None = None
    id: int | None = None
    #: how many photos of the event are kept (0: only their hashes)
    photos_kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def filled(self, **values: Any) -> Event:
        """This event (who asked) with what happened filled in."""
        return replace(self, **values)


#: who asks when a caller gives no event: the library, unless the command line says it is the command line
_default_source = Event(endpoint="library")


def set_default_source(endpoint: str, key_label: str | None = None, client: str | None = None) -> None:
    """Who the changes of this process are recorded as when a caller does not say (the CLI sets itself)."""
    global _default_source
    _default_source = Event(endpoint=endpoint, key_label=key_label, client=client)


def default_source() -> Event:
    return _default_source


def insert_event(
    db: sqlite3.Connection,
    event: Event,
    photos: Sequence[bytes] = (),
    keep_days: float = 0,
    moment: datetime | None = None,
) -> int:
    """Append ``event`` (inside the caller's transaction); keep ``photos`` for ``keep_days`` days if above 0."""
    if not event.kind or not event.outcome:
        raise GalleryError("an audit event needs a kind and an outcome")
    moment = moment or now()
    row = asdict(event)
    row["time"] = event.time or iso(moment)
    row["detail"] = json.dumps(event.detail, sort_keys=True, default=str) if event.detail else None
    cursor = db.execute(
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
        [row[c] for c in EVENT_COLUMNS],
    )
    event_id = int(cursor.lastrowid)
    if photos and keep_days > 0:
        expires = iso(moment + timedelta(days=keep_days))
        db.executemany(
            "INSERT INTO kept_photos (event_id, position, photo, expires_at) VALUES (?, ?, ?, ?)",
            [(event_id, i, bytes(p), expires) for i, p in enumerate(photos)],
        )
        purge_photos(db, moment)  # those past their period go as new ones come
    return event_id


def purge_photos(db: sqlite3.Connection, moment: datetime | None = None) -> int:
    """Delete the kept photos whose retention period is over; returns how many went."""
    return int(db.execute("DELETE FROM kept_photos WHERE expires_at < ?", (iso(moment or now()),)).rowcount)


def kept_photo(db: sqlite3.Connection, event_id: int, position: int = 0) -> bytes | None:
    row = db.execute(
        "SELECT photo FROM kept_photos WHERE event_id = ? AND position = ? AND expires_at >= ?",
        (event_id, position, iso(now())),
    ).fetchone()
    return None if row is None else bytes(row[0])


@dataclass(frozen=True)
class EventQuery:
    """A filter over the log: time range (ISO or relative, see :func:`parse_time`), person, outcome, kind;
    newest first, ``limit`` rows from before the event id ``before`` (a page's ``next_before``)."""

    since: str | None = None
    until: str | None = None
    person: str | None = None
    outcome: str | None = None
    kind: str | None = None
    limit: int = 50
    before: int | None = None


def query_events(db: sqlite3.Connection, query: EventQuery) -> tuple[list[Event], int | None]:
    """The events matching ``query``, newest first, and the ``before`` of the next page (None: no more)."""
    where, params = [], []
    for column, op, value in (
        ("time", ">=", parse_time(query.since) if query.since else None),
        ("time", "<=", parse_time(query.until, end=True) if query.until else None),
        ("name", "=", query.person),
        ("outcome", "=", query.outcome),
        ("kind", "=", query.kind),
        ("id", "<", query.before),
    ):
        if value is not None:
            where.append(f"e.{column} {op} ?")
            params.append(value)
    limit = max(1, min(int(query.limit), 1000))
    rows = db.execute(
        f"SELECT e.id, {', '.join('e.' + c for c in EVENT_COLUMNS)}, "
        "(SELECT COUNT(*) FROM kept_photos k WHERE k.event_id = e.id AND k.expires_at >= ?) "
        f"FROM events e {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY e.id DESC LIMIT ?",
        [iso(now()), *params, limit + 1],
    ).fetchall()
    events = [_event(row) for row in rows[:limit]]
    return events, (events[-1].id if len(rows) > limit else None)


def _event(row: Sequence[Any]) -> Event:
    values = dict(zip(("id", *EVENT_COLUMNS, "photos_kept"), row, strict=True))
    values["detail"] = json.loads(values["detail"]) if values["detail"] else {}
    return Event(**values)


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, end: bool = False, moment: datetime | None = None) -> str:
    """A time as the log writes it, from ISO 8601 (no zone: UTC), a date alone (its start, or with ``end``
    its last millisecond), "today", "yesterday" or an age ("90s", "15m", "2h", "7d", "1w": that long ago)."""
    text = text.strip()
    base = moment or now()
    match = _RELATIVE.match(text)
    if match:
        return iso(base - timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()]))
    day = {"today": 0, "yesterday": 1}.get(text.lower())
    if day is not None:
        start = base.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=day)
        return iso(start + timedelta(days=1, milliseconds=-1) if end else start)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise GalleryError(
            f"not a time: {text!r} (use ISO 8601 such as 2026-05-04T09:14, a date, today, yesterday, or an age "
            "such as 15m, 2h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if end and len(text) == 10:  # a date alone: up to its last millisecond
        parsed += timedelta(days=1, milliseconds=-1)
    return iso(parsed)


def decision_fields(result: Any, kind: str) -> dict[str, Any]:
    """An event's outcome, distance, threshold and operating point from a decision's result
    (:class:`~facegate.verification.VerifyResult` or :class:`~facegate.gallery.results.IdentifyResult`)."""
    if kind == "identify":
        outcome = "identified" if result.identity is not None else "unknown"
        point = f"FPIR {result.target_fpir:g}" if result.target_fpir is not None else None
        best = result.candidates[0].name if result.candidates else None
        detail = {"best_candidate": best, "enrolled_people": result.enrolled_people}
        return {
            "outcome": outcome,
            "name": result.identity,
            "distance": result.distance,
            "threshold": result.threshold,
            "operating_point": point or f"threshold {result.threshold:g}",
            "detail": detail,
        }
    outcome = {"verify": ("accepted", "refused"), "compare": ("same", "different")}[kind][not result.verified]
    point = f"FMR {result.target_fmr:g}" if result.target_fmr is not None else f"threshold {result.threshold:g}"
    return {
        "outcome": outcome,
        "distance": result.distance,
        "threshold": result.threshold,
        "operating_point": point,
    }


__all__ = [
    "CHANGES",
    "DECISIONS",
    "Event",
    "EventQuery",
    "decision_fields",
    "insert_event",
    "parse_time",
    "purge_photos",
    "query_events",
]
