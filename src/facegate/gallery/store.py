"""The gallery's persistent store: one SQLite file (WAL), people and their templates.

Schema: ``meta`` (the model the gallery is built with and the settings its
embeddings are made with: weights, test-time augmentation, engine), ``people``
(unique names), ``templates`` (one row per enrolled photo: embedding, model, engine
and augmentation that made it, source image SHA-256, face box); since version 3 the
service's tables too: ``events`` (the audit log, :mod:`facegate.gallery.audit`),
``kept_photos`` (decision photos an operator chose to keep for a while),
``api_keys`` (:mod:`facegate.gallery.keys`) and ``people_version`` (a counter that
triggers raise on every change to people or templates, so a reader rebuilds its
index only when they changed, not when an event was appended). Every write method
runs in one transaction: all of it lands or none, its audit event included. Older
files (version 1: before the settings were recorded; version 2: before the service's
tables) are upgraded in place when opened.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from facegate.errors import (
    DuplicatePersonError,
    DuplicateTemplateError,
    GalleryError,
    GalleryUnavailableError,
    ModelMismatchError,
    PersonNotFoundError,
)
from facegate.gallery.audit import Event, insert_event

SCHEMA_VERSION = "3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    model TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    box TEXT NOT NULL,
    created_at TEXT NOT NULL,
    engine TEXT,
    tta TEXT,
    UNIQUE (person_id, image_sha256)
);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    name TEXT,
    endpoint TEXT,
    key_label TEXT,
    client TEXT,
    distance REAL,
    threshold REAL,
    operating_point TEXT,
    photo_sha256 TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_name ON events(name, kind, id);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS kept_photos (
    event_id INTEGER NOT NULL REFERENCES events(id),
    position INTEGER NOT NULL,
    photo BLOB NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (event_id, position)
);
CREATE INDEX IF NOT EXISTS kept_photos_expiry ON kept_photos(expires_at);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    role TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS people_version (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
"""

#: every change to people or templates raises people_version (statements with ";" inside: run one by one)
_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_{op.lower()} AFTER {op} ON {table} "
    "BEGIN UPDATE people_version SET n = n + 1; END"
    for table in ("people", "templates")
    for op in ("INSERT", "UPDATE", "DELETE")
]


@dataclass(frozen=True)
class NewTemplate:
    embedding: np.ndarray
    image_sha256: str
    box: dict
    #: what made the embedding (None: imported, unknown)
    engine: str | None = None
    tta: str | None = None


@dataclass(frozen=True)
class PersonRecord:
    name: str
    templates: int
    created_at: str

    def to_dict(self) -> dict:
        return {"name": self.name, "templates": self.templates, "created_at": self.created_at}


#: meta keys a store writes for itself, never copied from another gallery (a copy gets its own identity;
#: a PostgreSQL gallery's search shards are indexes of its own server: ``gallery/pg_shards.py``)
OWN_META = ("schema_version", "index_metric", "gallery_uuid", "search_shards")

#: how long a writer waits for another process's transaction before giving up
BUSY_TIMEOUT_MS = 30_000
#: how many times opening is tried when SQLite answers "locked" without waiting
OPEN_ATTEMPTS = 20


@contextmanager
def damage_as_gallery_error(path: str) -> Iterator[None]:
    """SQLite's failures (damaged file, read-only, disk full, locked) as GalleryError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise GalleryUnavailableError(f"cannot use the gallery {path}: {_advice(exc)}") from exc


def _advice(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "readonly" in text:
        return f"{text} (the file or its folder is read-only: copy it somewhere writable, or fix its permissions)"
    if "disk is full" in text:
        return f"{text} (free some disk space and try again; nothing was changed)"
    if "malformed" in text or "not a database" in text:
        return f"{text} (the file is damaged or not a gallery: restore it from a backup)"
    if "locked" in text:
        return f"{text} (another process held it too long: try again)"
    return text


def _check_parent(path: Path) -> None:
    """A gallery's folder must exist as a writable folder (it is not created here)."""
    parent = path.expanduser().resolve().parent
    if parent.exists() and not parent.is_dir():
        raise GalleryError(f"cannot use the gallery {path}: {parent} is a file, not a folder")
    if not parent.exists():
        raise GalleryError(f"cannot use the gallery {path}: the folder {parent} does not exist")


def _differs(meta: Mapping[str, str], settings: Mapping[str, str | None], key: str) -> bool:
    """Whether a recorded setting and this session's disagree (one not known: they do not)."""
    return meta.get(key) is not None and settings.get(key) is not None and meta[key] != settings[key]


def check_recorded(
    path: str, meta: Mapping[str, str], model: str, settings: Mapping[str, str | None], compared: Sequence[str]
) -> None:
    """Refuse a gallery whose recorded model, or recorded settings named in ``compared``, differ from this session's."""
    if meta.get("model") != model:
        raise ModelMismatchError(
            f"the gallery {path} holds {meta.get('model')!r} embeddings; it cannot be used with "
            f"model {model!r} (embeddings of different models cannot be compared)"
        )
    differ = [
        f"{key}: {meta[key]!r} in the gallery, {settings[key]!r} here"
        for key in compared
        if _differs(meta, settings, key)
    ]
    if differ:
        raise ModelMismatchError(
            f"the gallery {path} holds {model!r} embeddings made with other settings than this session's "
            f"({'; '.join(differ)}); its templates and new ones could not be compared. Open it with the "
            "gallery's own settings (omit them: a gallery uses what it recorded), or enroll into a new gallery"
        )


def checked_vector(embedding: np.ndarray, dim: int, name: str) -> np.ndarray:
    """A template's embedding as ``dim`` finite float32 numbers, or a GalleryError (nothing is stored)."""
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.shape != (dim,):
        raise GalleryError(f"embedding of shape {vector.shape} does not fit this gallery ({dim},)")
    if not np.isfinite(vector).all():
        raise GalleryError(f"an embedding for {name!r} holds NaN or infinite values; nothing was stored")
    return vector


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SharedStoreCode:
    """What every store does the same way, on its own ``reading``, ``transaction`` (each
    yielding a connection that runs SQLite's SQL) and ``_insert_templates``."""

    def person_id(self, name: str) -> int:
        with self.reading() as db:  # type: ignore[attr-defined]
            row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"{name!r} is not enrolled")
        return int(row[0])

    def identity(self) -> str:
        """The gallery's lasting identity (meta ``gallery_uuid``, made on first use): what files
        derived from it (the ANN index, beside a file or in a door's cache) check they belong to.
        A read-only SQLite file without one answers with its creation time (a PostgreSQL role that
        may not write cannot open a gallery at all: opening runs the migrations)."""
        with self.reading() as db:  # type: ignore[attr-defined]
            row = db.execute("SELECT value FROM meta WHERE key = 'gallery_uuid'").fetchone()
        if row is not None:
            return str(row[0])
        try:
            with self.transaction() as db:  # type: ignore[attr-defined]
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('gallery_uuid', ?) ON CONFLICT (key) DO NOTHING",
                    (uuid.uuid4().hex,),
                )
                return str(db.execute("SELECT value FROM meta WHERE key = 'gallery_uuid'").fetchone()[0])
        except GalleryError:
            with self.reading() as db:  # type: ignore[attr-defined]
                row = db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
            return f"created {row[0] if row else 'unknown'}"

    def counts(self) -> tuple[int, int]:
        """(people, templates)."""
        with self.reading() as db:  # type: ignore[attr-defined]
            row = db.execute("SELECT (SELECT COUNT(*) FROM people), (SELECT COUNT(*) FROM templates)").fetchone()
        return int(row[0]), int(row[1])

    def record(self, event: Event, photos: Sequence[bytes] = (), keep_days: float = 0) -> int:
        """Append one event to the audit log, in its own transaction; returns its id."""
        with self.transaction() as db:  # type: ignore[attr-defined]
            return insert_event(db, event, photos, keep_days)

    def add_templates(
        self, name: str, templates: Sequence[NewTemplate], event: Event | None = None
    ) -> tuple[int, list[int]]:
        """Add templates to the enrolled ``name``, with the change's audit event, in one transaction."""
        with self.transaction() as db:  # type: ignore[attr-defined]
            person = self.person_id(name)  # type: ignore[attr-defined]
            ids = self._insert_templates(db, person, name, templates)  # type: ignore[attr-defined]
            _log(db, event)
            return person, ids


class GalleryStore(SharedStoreCode):
    """SQLite persistence of a gallery; knows nothing of images or models."""

    def __init__(
        self,
        path: str | Path,
        model: str,
        dim: int,
        create: bool = True,
        settings: Mapping[str, str | None] | None = None,
        compared: Sequence[str] = (),
    ) -> None:
        """Open (or create) the gallery at ``path`` for ``model``; ``settings`` are the
        embedding settings of this session (recorded in a new gallery, and where an old
        one lacks them); those named in ``compared`` must equal the recorded ones."""
        self.path = str(path)
        self.model = model
        self.dim = dim
        memory = self.path == ":memory:"
        existed = memory or Path(self.path).is_file()
        if not existed and not create:
            raise GalleryError(f"there is no gallery at {self.path}: enroll someone first, or check --gallery")
        if not memory:
            _check_parent(Path(self.path))
        with damage_as_gallery_error(self.path):
            for attempt in range(OPEN_ATTEMPTS):
                start = time.monotonic()
                try:
                    self._open(existed, memory, model, dim, dict(settings or {}), tuple(compared))
                    break
                except GalleryUnavailableError as exc:
                    # SQLite answers "locked" at once, without waiting, where waiting could deadlock: while
                    # several processes create one new file, one may still be switching it to WAL. Opening
                    # is idempotent, so open again; a lock held past the busy timeout is not retried.
                    self._db.close()
                    at_once = time.monotonic() - start < 1.0
                    if "locked" not in str(exc) or not at_once or attempt == OPEN_ATTEMPTS - 1:
                        raise
                    time.sleep(0.02 * (attempt + 1))
                    existed = existed or Path(self.path).is_file()

    def _open(
        self, existed: bool, memory: bool, model: str, dim: int, settings: dict, compared: tuple[str, ...]
    ) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        with damage_as_gallery_error(self.path):
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # first: the next pragmas may wait
            self._db.execute("PRAGMA foreign_keys = ON")
            if existed and not memory:
                self._check_integrity()
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
        with self.transaction():  # BEGIN IMMEDIATE: concurrent creators take turns
            for statement in [*_SCHEMA.strip().split(";"), *_TRIGGERS]:
                if statement.strip():
                    self._db.execute(statement)
            self._upgrade()
            self._init_meta(model, dim, settings, compared)

    def _upgrade(self) -> None:
        """Bring an older file to this schema: templates learn what made them (NULL: unknown; version 1),
        and the service's tables, created above, start empty (version 2)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(templates)").fetchall()}
        added = [column for column in ("engine", "tta") if column not in columns]
        for column in added:
            self._db.execute(f"ALTER TABLE templates ADD COLUMN {column} TEXT")
        if self._db.execute("SELECT 1 FROM people_version").fetchone() is None:
            self._db.execute("INSERT INTO people_version (id, n) VALUES (0, 0)")
        old = self._db.execute(
            "SELECT 1 FROM meta WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?", (int(SCHEMA_VERSION),)
        ).fetchone()
        if old is not None:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))

    @classmethod
    def open_existing(cls, path: str | Path) -> GalleryStore:
        """An existing gallery's store, with the model and size it records (no model is loaded):
        for its keys and its audit log."""
        meta = cls.stored_meta(path)
        if not meta:
            raise GalleryError(f"there is no gallery at {path}: enroll someone first, or check --gallery")
        return cls(path, meta["model"], int(meta["dim"]), create=False)

    def _check_integrity(self) -> None:
        size = Path(self.path).stat().st_size
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        # a partial page is always damage; a missing page only when no other connection is
        # writing (no -wal or -shm file: every page must then be in the main file)
        alone = not any(Path(self.path + suffix).exists() for suffix in ("-wal", "-shm"))
        if size % page or (alone and size < page * pages):
            raise GalleryError(
                f"the gallery {self.path} is damaged ({size:,} bytes where {pages} pages of {page:,} should be); "
                "restore it from a backup"
            )
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise GalleryError(
                f"the gallery {self.path} is damaged ({'; '.join(problems[:3])}); restore it from a backup"
            )

    def _init_meta(self, model: str, dim: int, settings: dict[str, str | None], compared: tuple[str, ...]) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            rows = [("model", model), ("dim", str(dim)), ("schema_version", SCHEMA_VERSION), ("created_at", _now())]
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
        else:
            check_recorded(self.path, meta, model, settings, compared)
        missing = [(k, v) for k, v in settings.items() if k != "model" and k not in meta and v is not None]
        if missing:  # a new gallery, or a version 1 file (a read-only gallery is not written to)
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", missing)

    @staticmethod
    def stored_meta(path: str | Path) -> dict[str, str]:
        """What a gallery file records (model, settings, ...), or {} for a new or empty file."""
        if str(path) == ":memory:" or not Path(path).is_file():
            return {}
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000) as db:
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
                    if db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
                        return {}  # an empty file, or one another process is creating right now
                    raise GalleryError(f"{path} is not a facegate gallery (an SQLite file without its tables)")
                return dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path} is not a facegate gallery, or is damaged: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with damage_as_gallery_error(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection commits to the file (SQLite's data_version)."""
        with damage_as_gallery_error(self.path):
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def people_version(self) -> int:
        """Raised by every committed change to people or templates (by any connection)."""
        with damage_as_gallery_error(self.path):
            return int(self._db.execute("SELECT n FROM people_version").fetchone()[0])

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads (SQLite's failures as GalleryError)."""
        with damage_as_gallery_error(self.path):
            yield self._db

    def close(self) -> None:
        self._db.close()

    # -- reads ------------------------------------------------------------
    def people(self) -> list[PersonRecord]:
        with damage_as_gallery_error(self.path):
            rows = self._db.execute(
                "SELECT p.name, COUNT(t.id), p.created_at FROM people p "
                "LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id ORDER BY p.name"
            ).fetchall()
        return [PersonRecord(name, count, created) for name, count, created in rows]

    def load_matrix(self) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """All templates: (owner person ids, embeddings (n, dim) float32, person names by id)."""
        with damage_as_gallery_error(self.path):
            rows = self._db.execute("SELECT person_id, embedding FROM templates ORDER BY id").fetchall()
            names = dict(self._db.execute("SELECT id, name FROM people").fetchall())
        size = self.dim * 4
        damaged = sum(1 for r in rows if not isinstance(r[1], bytes) or len(r[1]) != size)
        if damaged:
            raise GalleryError(
                f"the gallery {self.path} holds {damaged} template(s) that are not {self.dim} float32 numbers "
                f"(damaged, or written for another model); restore it from a backup"
            )
        owners = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dim)
        return owners, matrix.copy(), names

    def load_templates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
        """:meth:`load_matrix` with each template's id first (one read: a consistent snapshot)."""
        with damage_as_gallery_error(self.path):
            self._db.execute("BEGIN")
            try:
                ids = np.array([r[0] for r in self._db.execute("SELECT id FROM templates ORDER BY id")], np.int64)
                owners, matrix, names = self.load_matrix()
            finally:
                self._db.execute("COMMIT")
        if len(ids) != len(owners):  # pragma: no cover - one read transaction: cannot differ
            raise GalleryError(f"the gallery {self.path} changed while it was read; try again")
        return ids, owners, matrix, names

    def export(self) -> tuple[dict[str, str], list[tuple], list[tuple]]:
        """Everything ``facegate gallery copy`` moves: meta, people (name, created_at) and templates
        (name, embedding float32, model, image_sha256, box, created_at, engine, tta), in id order."""
        with damage_as_gallery_error(self.path):
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            people = self._db.execute("SELECT name, created_at FROM people ORDER BY id").fetchall()
            rows = self._db.execute(
                "SELECT p.name, t.embedding, t.model, t.image_sha256, t.box, t.created_at, t.engine, t.tta "
                "FROM templates t JOIN people p ON p.id = t.person_id ORDER BY t.id"
            ).fetchall()
        templates = [(r[0], np.frombuffer(r[1], dtype=np.float32).copy(), *r[2:]) for r in rows]
        return meta, [tuple(p) for p in people], templates

    def import_rows(self, meta: Mapping[str, str], people: Sequence[tuple], templates: Sequence[tuple]) -> None:
        """Write an :meth:`export` (of any backend) into this empty gallery, in one transaction."""
        with self.transaction() as db:
            if self.counts() != (0, 0):
                raise GalleryError(f"the gallery {self.path} is not empty: copy into a new one")
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, v) for k, v in meta.items() if k not in OWN_META],
            )
            ids = {}
            for name, created in people:
                ids[name] = db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, created)).lastrowid
            db.executemany(
                "INSERT INTO templates (person_id, embedding, model, image_sha256, box, created_at, engine, tta) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(ids[n], np.asarray(v, np.float32).tobytes(), *rest) for n, v, *rest in templates],
            )

    # -- writes (each one transaction) -------------------------------------
    # ``event``: the audit event of the change, appended in the change's own transaction
    def add_person(
        self, name: str, templates: Sequence[NewTemplate], event: Event | None = None
    ) -> tuple[int, list[int]]:
        with self.transaction() as db:
            try:
                cursor = db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, _now()))
            except sqlite3.IntegrityError:
                raise DuplicatePersonError(f"{name!r} is already enrolled; add photos to them instead") from None
            person = int(cursor.lastrowid)
            ids = self._insert_templates(db, person, name, templates)
            _log(db, event)
            return person, ids

    def _insert_templates(
        self, db: sqlite3.Connection, person: int, name: str, templates: Sequence[NewTemplate]
    ) -> list[int]:
        ids = []
        for t in templates:
            vector = checked_vector(t.embedding, self.dim, name)
            try:
                cursor = db.execute(
                    "INSERT INTO templates (person_id, embedding, model, image_sha256, box, created_at, engine, tta) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (person, vector.tobytes(), self.model, t.image_sha256, json.dumps(t.box), _now(), t.engine, t.tta),
                )
            except sqlite3.IntegrityError:
                raise DuplicateTemplateError(
                    f"this photo (sha256 {t.image_sha256[:12]}…) is already enrolled for {name!r}"
                ) from None
            ids.append(int(cursor.lastrowid))
        return ids

    def add_many(
        self, people: dict[str, Sequence[NewTemplate]], events: Mapping[str, Event] | None = None
    ) -> dict[str, tuple[int, list[int], bool]]:
        """Add templates to many people (enrolling the new ones) in one transaction (with each person's event).

        Returns, per name, (person id, the new template ids, whether the person is new)."""
        empty = [name for name, templates in people.items() if not templates]
        if empty:
            raise GalleryError(f"no templates for {empty[0]!r}: a person needs at least one; nothing was stored")
        with self.transaction() as db:
            names = list(people)
            if len(names) <= 500:  # a few people: look up only them (a large gallery holds a million)
                marks = ",".join("?" * len(names))
                known = dict(db.execute(f"SELECT name, id FROM people WHERE name IN ({marks})", names).fetchall())
            else:
                known = dict(db.execute("SELECT name, id FROM people").fetchall())
            added = {}
            for name, templates in people.items():
                person = known.get(name)
                if person is None:
                    cursor = db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, _now()))
                    person = int(cursor.lastrowid)
                ids = self._insert_templates(db, person, name, templates)
                added[name] = (int(person), ids, name not in known)
                _log(db, (events or {}).get(name))
            return added

    def remove_person(self, name: str, event: Event | None = None) -> int:
        with self.transaction() as db:
            person = self.person_id(name)
            removed = db.execute("DELETE FROM templates WHERE person_id = ?", (person,)).rowcount
            db.execute("DELETE FROM people WHERE id = ?", (person,))
            _log(db, event, detail={"templates_removed": int(removed)})
            return int(removed)

    def rename_person(self, old: str, new: str, event: Event | None = None) -> int:
        with self.transaction() as db:
            person = self.person_id(old)
            try:
                db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person))
            except sqlite3.IntegrityError:
                raise DuplicatePersonError(f"{new!r} is already enrolled") from None
            _log(db, event)
            return person


def _log(db: sqlite3.Connection, event: Event | None, **extra) -> None:
    """Append a change's event inside its transaction (``extra``: what only the transaction knows)."""
    if event is not None:
        if "detail" in extra:
            extra["detail"] = {**event.detail, **extra["detail"]}
        insert_event(db, event.filled(**extra) if extra else event)
