"""The gallery's persistent store: one SQLite file (WAL), people and their templates.

Schema: ``meta`` (the model the gallery is built with and the settings its
embeddings are made with: weights, test-time augmentation, engine), ``people``
(unique names), ``templates`` (one row per enrolled photo: embedding, model, engine
and augmentation that made it, source image SHA-256, face box). Every write method
runs in one transaction: all of it lands or none. A version 1 file (before the
settings were recorded) is upgraded in place when opened.
"""

from __future__ import annotations

import json
import sqlite3
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
    ModelMismatchError,
    PersonNotFoundError,
)

SCHEMA_VERSION = "2"

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
"""


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


#: how long a writer waits for another process's transaction before giving up
BUSY_TIMEOUT_MS = 30_000


@contextmanager
def damage_as_gallery_error(path: str) -> Iterator[None]:
    """SQLite's failures (damaged file, read-only, disk full, locked) as GalleryError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise GalleryError(f"cannot use the gallery {path}: {_advice(exc)}") from exc


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class GalleryStore:
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
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # first: the next pragmas may wait
            self._db.execute("PRAGMA foreign_keys = ON")
            if existed and not memory:
                self._check_integrity()
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
            with self.transaction():  # BEGIN IMMEDIATE: concurrent creators take turns
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._upgrade()
                self._init_meta(model, dim, dict(settings or {}), tuple(compared))

    def _upgrade(self) -> None:
        """Bring a version 1 file to this schema: templates learn what made them (NULL: unknown)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(templates)").fetchall()}
        added = [column for column in ("engine", "tta") if column not in columns]
        for column in added:
            self._db.execute(f"ALTER TABLE templates ADD COLUMN {column} TEXT")
        if added:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))

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
        elif meta.get("model") != model:
            raise ModelMismatchError(
                f"the gallery {self.path} holds {meta.get('model')!r} embeddings; it cannot be used with "
                f"model {model!r} (embeddings of different models cannot be compared)"
            )
        differ = [
            f"{key}: {meta[key]!r} in the gallery, {settings[key]!r} here"
            for key in compared
            if _differs(meta, settings, key)
        ]
        if differ:
            raise ModelMismatchError(
                f"the gallery {self.path} holds {model!r} embeddings made with other settings than this session's "
                f"({'; '.join(differ)}); its templates and new ones could not be compared. Open it with the "
                "gallery's own settings (omit them: a gallery uses what it recorded), or enroll into a new gallery"
            )
        missing = [(k, v) for k, v in settings.items() if k != "model" and k not in meta and v is not None]
        if missing:  # a new gallery, or a version 1 file (a read-only gallery is not written to)
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", missing)
        self.settings = {k: v for k, v in {**meta, **dict(missing)}.items() if k in settings}

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

    def close(self) -> None:
        self._db.close()

    # -- reads ------------------------------------------------------------
    def person_id(self, name: str) -> int:
        with damage_as_gallery_error(self.path):
            row = self._db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"{name!r} is not enrolled")
        return int(row[0])

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

    # -- writes (each one transaction) -------------------------------------
    def add_person(self, name: str, templates: Sequence[NewTemplate]) -> tuple[int, list[int]]:
        with self.transaction() as db:
            try:
                cursor = db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, _now()))
            except sqlite3.IntegrityError:
                raise DuplicatePersonError(f"{name!r} is already enrolled; add photos to them instead") from None
            person = int(cursor.lastrowid)
            return person, self._insert_templates(db, person, name, templates)

    def add_templates(self, name: str, templates: Sequence[NewTemplate]) -> tuple[int, list[int]]:
        with self.transaction() as db:
            person = self.person_id(name)
            return person, self._insert_templates(db, person, name, templates)

    def _insert_templates(
        self, db: sqlite3.Connection, person: int, name: str, templates: Sequence[NewTemplate]
    ) -> list[int]:
        ids = []
        for t in templates:
            vector = np.asarray(t.embedding, dtype=np.float32)
            if vector.shape != (self.dim,):
                raise GalleryError(f"embedding of shape {vector.shape} does not fit this gallery ({self.dim},)")
            if not np.isfinite(vector).all():
                raise GalleryError(f"an embedding for {name!r} holds NaN or infinite values; nothing was stored")
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

    def add_many(self, people: dict[str, Sequence[NewTemplate]]) -> None:
        """Add templates to many people (enrolling the new ones) in one transaction."""
        empty = [name for name, templates in people.items() if not templates]
        if empty:
            raise GalleryError(f"no templates for {empty[0]!r}: a person needs at least one; nothing was stored")
        with self.transaction() as db:
            known = dict(db.execute("SELECT name, id FROM people").fetchall())
            for name, templates in people.items():
                person = known.get(name)
                if person is None:
                    cursor = db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, _now()))
                    person = int(cursor.lastrowid)
                self._insert_templates(db, person, name, templates)

    def remove_person(self, name: str) -> int:
        with self.transaction() as db:
            person = self.person_id(name)
            removed = db.execute("DELETE FROM templates WHERE person_id = ?", (person,)).rowcount
            db.execute("DELETE FROM people WHERE id = ?", (person,))
            return int(removed)

    def rename_person(self, old: str, new: str) -> int:
        with self.transaction() as db:
            person = self.person_id(old)
            try:
                db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person))
            except sqlite3.IntegrityError:
                raise DuplicatePersonError(f"{new!r} is already enrolled") from None
            return person
