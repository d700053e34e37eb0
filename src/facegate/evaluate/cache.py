"""Embeddings of image files, computed once and kept on disk.

An evaluation embeds thousands of photos (about 0.1 s each on a CPU core) and is
rerun with other metrics, folds or thresholds; only the first run should pay. One
``.npz`` file per (model, detector, tta, upsample) holds, for every image seen, its
embedding (or the error that stopped it: a failure to enrol is a result too), keyed
by the file's absolute path, size and modification time, so an edited photo is
embedded again.

The folder is ``cache_dir``, else ``$FACEGATE_CACHE/embeddings``, else
``~/.cache/facegate/embeddings``. Writes are atomic and merge with what another
process wrote meanwhile.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate import errors as _errors
from facegate.errors import FacegateError
from facegate.models import get_model
from facegate.paths import cache_dir
from facegate.pipeline import DEFAULT_MULTI_FACE, DEFAULT_TTA, MultiFacePolicy, represent_many

#: rows written per saved batch, so an interrupted long run keeps most of its work
SAVE_EVERY = 1000


def default_cache_dir() -> Path:
    """``$FACEGATE_CACHE/embeddings`` or ``~/.cache/facegate/embeddings`` (:func:`facegate.paths.cache_dir`)."""
    return cache_dir("embeddings")


def file_key(path: str | Path) -> str:
    """The cache key of an image file: absolute path, size and mtime (ns)."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"


@dataclass(frozen=True)
class Embedded:
    """One embedding per input image (a NaN row where the image failed) and the errors."""

    paths: list[str]
    vectors: np.ndarray
    errors: list[str | None]
    boxes: np.ndarray
    model: str
    detector: str

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the images that gave an embedding."""
        return np.array([e is None for e in self.errors], dtype=bool)

    @property
    def n_failed(self) -> int:
        return int((~self.ok).sum())

    @property
    def fte_rate(self) -> float:
        """Failure-to-enrol rate: share of images without an embedding."""
        return self.n_failed / len(self.paths) if self.paths else 0.0

    def index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}

    def failures(self) -> dict[str, str]:
        return {p: e for p, e in zip(self.paths, self.errors, strict=True) if e is not None}


class EmbeddingCache:
    """The on-disk table of one (model, detector, tta, upsample, face policy) configuration."""

    def __init__(
        self,
        directory: str | Path | None,
        model: str,
        detector: str,
        tta: bool = DEFAULT_TTA,
        upsample: int | None = None,
        multi_face: MultiFacePolicy = DEFAULT_MULTI_FACE,
    ) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        up = "auto" if upsample is None else f"up{upsample}"
        name = f"{model}__{detector}__{'tta' if tta else 'plain'}__{up}__{multi_face}-face"
        self.path = self.directory / f"{name}.npz"
        self.dim = get_model(model).dim
        self._rows: dict[str, tuple[np.ndarray, str, np.ndarray]] = {}
        self._load()

    def _load(self) -> None:
        self._rows.update(_read(self.path, self.dim))

    def get(self, key: str) -> tuple[np.ndarray, str, np.ndarray] | None:
        """(vector, error message or '', box) for ``key``, if cached."""
        return self._rows.get(key)

    def put(self, key: str, vector: np.ndarray, error: str, box: np.ndarray) -> None:
        self._rows[key] = (np.asarray(vector, dtype=np.float32), error, np.asarray(box, dtype=np.int32))

    def __len__(self) -> int:
        return len(self._rows)

    def save(self) -> Path:
        """Merge with the file as it is now (another process may have added rows) and write atomically."""
        rows = _read(self.path, self.dim)
        rows.update(self._rows)
        self._rows = rows
        self.directory.mkdir(parents=True, exist_ok=True)
        keys = list(rows)
        vectors = np.stack([rows[k][0] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)
        boxes = np.stack([rows[k][2] for k in keys]) if keys else np.zeros((0, 4), np.int32)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".npz.tmp")
        os.close(fd)
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                keys=np.array(keys, dtype=str),
                vectors=vectors.astype(np.float32),
                errors=np.array([rows[k][1] for k in keys], dtype=str),
                boxes=boxes.astype(np.int32),
            )
        os.replace(tmp, self.path)
        return self.path


def _read(path: Path, dim: int) -> dict[str, tuple[np.ndarray, str, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors, errs, boxes = data["keys"], data["vectors"], data["errors"], data["boxes"]
    except (OSError, ValueError, KeyError):
        return {}  # a corrupt or foreign file is ignored and rewritten
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        return {}
    return {str(k): (v, str(e), b) for k, v, e, b in zip(keys, vectors, errs, boxes, strict=True)}


def _error_text(exc: FacegateError) -> str:
    return f"{type(exc).__name__}: {exc}"


def error_class(text: str) -> type[FacegateError]:
    """The facegate error class named at the start of a cached error message."""
    name = text.split(":", 1)[0]
    cls = getattr(_errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, FacegateError) else FacegateError


def embed_files(
    paths: Sequence[str | Path],
    model: str,
    detector: str,
    tta: bool = DEFAULT_TTA,
    upsample: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: bool = False,
    multi_face: MultiFacePolicy = DEFAULT_MULTI_FACE,
) -> Embedded:
    """The embedding of the main face (or with ``multi_face="largest"``, the largest) of
    every image file, from the cache where possible.

    Missing files raise ``ImageNotFoundError`` (a wrong images folder is a user error,
    not a failure to enrol); images without a face, or that cannot be decoded, give a
    NaN row and their error message.
    """
    from facegate.errors import ImageNotFoundError

    names = [str(p) for p in paths]
    missing = [p for p in names if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ImageNotFoundError(f"no such image file: {missing[0]}{more}")
    dim = get_model(model).dim
    if multi_face not in ("main", "largest"):
        raise ValueError(f"one embedding per image: multi_face must be main or largest, not {multi_face!r}")
    cache = EmbeddingCache(cache_dir, model, detector, tta, upsample, multi_face) if use_cache else None
    keys = [file_key(p) for p in names]
    todo = sorted({k for k in keys if cache is None or cache.get(k) is None})
    fresh: dict[str, tuple[np.ndarray, str, np.ndarray]] = {}
    if todo:
        by_key = dict(zip(keys, names, strict=True))
        for start in range(0, len(todo), SAVE_EVERY if cache is not None else len(todo)):
            batch = todo[start : start + SAVE_EVERY] if cache is not None else todo
            files = [by_key[k] for k in batch]
            results = represent_many(
                files,
                model_name=model,
                detector_backend=detector,
                multi_face=multi_face,
                upsample=upsample,
                tta=tta,
                workers=workers,
                progress=progress and len(todo) > 1,
                labels=files,
            )
            for key, result in zip(batch, results, strict=True):
                if isinstance(result, FacegateError):
                    row = (np.full(dim, np.nan, np.float32), _error_text(result), np.full(4, -1, np.int32))
                else:
                    area = result[0].facial_area
                    row = (result[0].embedding.astype(np.float32), "", np.array([area.x, area.y, area.w, area.h]))
                fresh[key] = row
                if cache is not None:
                    cache.put(key, *row)
            if cache is not None:
                cache.save()
    rows = [fresh.get(k) or cache.get(k) for k in keys]  # type: ignore[union-attr]
    return Embedded(
        paths=names,
        vectors=np.stack([r[0] for r in rows]) if rows else np.zeros((0, dim), np.float32),
        errors=[r[1] or None for r in rows],
        boxes=np.stack([r[2] for r in rows]) if rows else np.zeros((0, 4), np.int32),
        model=model,
        detector=detector,
    )
