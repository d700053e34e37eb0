"""Where a gallery lives: the store class chosen from its location.

A location is an SQLite file path (the default) or a URL whose scheme names a
backend (``postgresql://user:password@host:5432/dbname``). Backends register the
schemes they answer to; :func:`open_store`, :func:`stored_meta` and
:func:`open_existing` are what the gallery, the CLI and the service call, never a
store class directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegate.errors import UnknownNameError
from facegate.registry import Registry


@dataclass(frozen=True)
class Backend:
    """A store class, imported when first used (the PostgreSQL driver is an optional extra)."""

    name: str
    load: Callable[[], type]
    #: whether locations are file paths (their folder is created for a new gallery)
    is_file: bool = False


BACKENDS: Registry[Backend] = Registry("gallery backend")


def _sqlite() -> type:
    from facegate.gallery.store import GalleryStore

    return GalleryStore


def _postgres() -> type:
    from facegate.gallery.store_postgres import PostgresStore

    return PostgresStore


for _scheme, _backend in (
    ("sqlite", Backend("sqlite", _sqlite, is_file=True)),
    ("postgresql", Backend("postgresql", _postgres)),
    ("postgres", Backend("postgresql", _postgres)),
):
    BACKENDS.register(_scheme)(lambda b=_backend: b)


def scheme_of(location: str | Path) -> str | None:
    """A URL's scheme (``postgresql``), or None for a file path (a Windows drive letter is no scheme)."""
    if isinstance(location, Path):
        return None
    head, sep, _ = str(location).partition("://")
    return head.lower() if sep and len(head) > 1 else None


def backend_for(location: str | Path) -> Backend:
    """The backend of a location: its URL scheme's, else SQLite's (a path)."""
    scheme = scheme_of(location)
    if scheme is None:
        return BACKENDS.create("sqlite")
    try:
        return BACKENDS.create(scheme)
    except UnknownNameError:
        known = ", ".join(f"{s}://" for s in BACKENDS.names() if s != "sqlite")
        raise UnknownNameError(f"no gallery backend for {scheme}:// (known: {known}, or a file path)") from None


def store_location(location: str | Path) -> str | Path:
    """A ``sqlite://PATH`` location as its path; any other as given."""
    scheme = scheme_of(location)
    return Path(str(location).split("://", 1)[1]) if scheme == "sqlite" else location


def is_url(location: str | Path) -> bool:
    """Whether a location is a server's URL (not a file)."""
    return not backend_for(location).is_file


def open_store(location: str | Path, model: str, dim: int, **options: Any):
    """The store of the gallery at ``location`` (``options``: create, settings, compared, as the stores take)."""
    return backend_for(location).load()(store_location(location), model, dim, **options)


def stored_meta(location: str | Path) -> dict[str, str]:
    """What the gallery at ``location`` records (model, settings, ...), or {} where there is none yet."""
    return backend_for(location).load().stored_meta(store_location(location))


def open_existing(location: str | Path):
    """An existing gallery's store, with the model it records (no model loaded): keys, the log, copying."""
    return backend_for(location).load().open_existing(store_location(location))


#: the embedding settings a copy's destination must agree with
_COMPARED = ("model", "weights", "tta")


@dataclass(frozen=True)
class CopyReport:
    source: str
    destination: str
    model: str
    people: int
    templates: int
    #: SHA-256 of every template (owner, embedding bytes, photo hash) in order, equal on both sides
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _digest(people: list, templates: list) -> str:
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for name, created in people:
        h.update(f"{name}\0{created}\0".encode())
    for name, vector, model, sha, box, created, engine, tta in templates:
        h.update(f"{name}\0{model}\0{sha}\0{box}\0{created}\0{engine}\0{tta}\0".encode())
        h.update(np.asarray(vector, dtype="<f4").tobytes())
    return h.hexdigest()


def copy_gallery(source: str | Path, destination: str | Path) -> CopyReport:
    """Copy a gallery (people, templates bit-exact with their model, engine, augmentation, photo hash and face
    box, and its meta) into a new or empty gallery of any backend, in one transaction; then check that both hold
    the same counts and the same templates. Refuses a destination with people, or one of another model or
    other embedding settings (ModelMismatchError)."""
    from facegate.errors import GalleryError

    src = open_existing(source)
    try:
        meta, people, templates = src.export()
        counts = src.counts()
    finally:
        src.close()
    settings = {k: meta[k] for k in (*_COMPARED, "engine") if k in meta}
    dst = open_store(destination, meta["model"], int(meta["dim"]), settings=settings, compared=_COMPARED)
    try:
        if dst.counts() != (0, 0):
            people_there, templates_there = dst.counts()
            raise GalleryError(
                f"the gallery {dst.path} is not empty ({people_there} people, {templates_there} templates): "
                "copy into a new one"
            )
        dst.import_rows(meta, people, templates)  # each store leaves out its own keys (OWN_META)
        copied = dst.counts()
        _, people_after, templates_after = dst.export()
    finally:
        dst.close()
    want = (len(people), len(templates))
    digest, digest_after = _digest(people, templates), _digest(people_after, templates_after)
    if counts != want or copied != want or digest != digest_after:
        raise GalleryError(
            f"the copy of {src.path} to {dst.path} does not match: {copied[0]} people and {copied[1]} templates "
            f"copied of {want[0]} and {want[1]}{'' if digest == digest_after else ' (templates differ)'}"
        )
    return CopyReport(
        str(getattr(src, "path", source)),
        str(getattr(dst, "path", destination)),
        meta["model"],
        want[0],
        want[1],
        digest,
    )


__all__ = [
    "BACKENDS",
    "Backend",
    "CopyReport",
    "backend_for",
    "copy_gallery",
    "is_url",
    "open_existing",
    "open_store",
    "stored_meta",
]
