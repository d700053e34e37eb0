"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015), the official layout, in memory.

* ``images_background.zip`` – 30 alphabets, 964 characters (for training);
* ``images_evaluation.zip`` – 20 alphabets, 659 characters (for testing);
* ``all_runs.zip`` – the 20 official within-alphabet 20-way 1-shot runs.

Every character was drawn once by each of 20 people ("drawers"): a file
``<Alphabet>/characterNN/<id>_DD.png`` is drawer ``DD`` (01–20). Images are 105x105
1-bit PNGs, black ink on white. A split loads as one dense bool array of shape
``(characters, 20, 105, 105)``, True where there is ink, indexed by drawer (0-based).
Archives are read directly (or their extracted folders); decoded arrays are cached as
``.npy`` under ``$FACEGATE_CACHE/omniglot`` (default ``~/.cache/facegate/omniglot``) so that reloads take
well under a second.

:func:`download_omniglot` fetches the official archives and checks their SHA-256; the
library never downloads anything on its own. :func:`prepare` turns ink images into the
float input of the networks (box-filter downsampling); it is shared by training,
evaluation and the ``omniglot`` embedding model, so they all see the same pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from facegate.datasets.download import RemoteFile, download
from facegate.paths import cache_dir

__all__ = [
    "DRAWERS",
    "IMAGE_SIDE",
    "SHA256",
    "URLS",
    "OmniglotSplit",
    "OneShotRun",
    "cache_root",
    "download_omniglot",
    "load_official_runs",
    "load_omniglot",
    "prepare",
]

Split = Literal["background", "evaluation"]

IMAGE_SIDE = 105
DRAWERS = 20

_BASE = "https://github.com/brendenlake/omniglot/raw/master/python"
#: official download addresses of the three archives
URLS: dict[str, str] = {
    "images_background.zip": f"{_BASE}/images_background.zip",
    "images_evaluation.zip": f"{_BASE}/images_evaluation.zip",
    "all_runs.zip": f"{_BASE}/one-shot-classification/all_runs.zip",
}
#: SHA-256 of the official archives
SHA256: dict[str, str] = {
    "images_background.zip": "44e8027896b1955ba2549cac754ae578505dfa524f97be126b5d97d49be6d0f1",
    "images_evaluation.zip": "28bc6a60bc5b5ab06de6cb49f1db7bc8e44fbe4a3150d7726dafd3e2b6c702b3",
    "all_runs.zip": "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
}
#: characters per split in the official release
EXPECTED_CHARACTERS: dict[str, int] = {"background": 964, "evaluation": 659}

_DRAWER = re.compile(r"_(\d+)\.png$")


@dataclass(frozen=True)
class OmniglotSplit:
    """One Omniglot split in memory."""

    name: str
    #: (characters, 20, 105, 105) bool, True = ink; axis 1 is the drawer (0-based)
    images: np.ndarray
    #: alphabet name of each character
    alphabets: tuple[str, ...]
    #: "Alphabet/characterNN" of each character
    characters: tuple[str, ...]

    @property
    def n_characters(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_drawers(self) -> int:
        return int(self.images.shape[1])

    @property
    def alphabet_names(self) -> list[str]:
        return sorted(set(self.alphabets))

    @property
    def alphabet_ids(self) -> np.ndarray:
        """``(characters,)`` index of each character's alphabet in :attr:`alphabet_names`."""
        index = {name: i for i, name in enumerate(self.alphabet_names)}
        return np.array([index[a] for a in self.alphabets], dtype=np.int64)

    def subset(self, alphabets: list[str] | set[str], name: str | None = None) -> OmniglotSplit:
        """The characters of the given alphabets only (a view of the same images)."""
        wanted = set(alphabets)
        unknown = wanted - set(self.alphabets)
        if unknown:
            raise KeyError(f"no such alphabets in {self.name}: {sorted(unknown)}")
        keep = np.array([a in wanted for a in self.alphabets])
        idx = np.flatnonzero(keep)
        return OmniglotSplit(
            name=name or f"{self.name}-subset",
            images=self.images[idx],
            alphabets=tuple(self.alphabets[i] for i in idx),
            characters=tuple(self.characters[i] for i in idx),
        )


@dataclass(frozen=True)
class OneShotRun:
    """One official 20-way 1-shot run: one image per class, one test image per class."""

    name: str
    #: (20, 105, 105) bool – the single training example of each class
    training: np.ndarray
    #: (20, 105, 105) bool – the test items
    test: np.ndarray
    #: (20,) int – index into ``training`` of each test item's class
    answers: np.ndarray


def cache_root() -> Path:
    """Where decoded arrays are cached: :func:`facegate.paths.cache_dir` ``("omniglot")``."""
    return cache_dir("omniglot")


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        grey = np.asarray(im.convert("L"))
    return grey < 128  # ink is black


def _source(root: Path, stem: str) -> Path:
    """The archive ``root/stem.zip`` or the folder ``root/stem`` (or root itself)."""
    for candidate in (root / f"{stem}.zip", root / stem):
        if candidate.exists():
            return candidate
    if root.name == stem and root.is_dir():
        return root
    raise FileNotFoundError(
        f"Omniglot {stem!r} not found under {root} (expected {stem}.zip or an extracted {stem}/); "
        f"facegate.learn.omniglot_data.download_omniglot({str(root)!r}) fetches it"
    )


def _iter_pngs(source: Path) -> Iterator[tuple[str, bytes]]:
    """``(relative path, bytes)`` of every PNG of an archive or folder, in sorted order."""
    if source.is_file():
        with zipfile.ZipFile(source) as zf:
            for name in sorted(n for n in zf.namelist() if n.endswith(".png")):
                yield name, zf.read(name)
    else:
        for path in sorted(source.rglob("*.png")):
            yield path.relative_to(source).as_posix(), path.read_bytes()


def _fingerprint(source: Path) -> str:
    if source.is_file():
        st = source.stat()
        return hashlib.sha1(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    pngs = sorted(source.rglob("*.png"))
    latest = max((p.stat().st_mtime_ns for p in pngs), default=0)
    return hashlib.sha1(f"{source.resolve()}|{len(pngs)}|{latest}".encode()).hexdigest()[:16]


def _decode_split(split: str, source: Path) -> OmniglotSplit:
    per_char: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for rel, data in _iter_pngs(source):
        parts = rel.split("/")
        if len(parts) < 3:
            continue
        alphabet, character = parts[-3], parts[-2]
        match = _DRAWER.search(parts[-1])
        if match is None:
            continue
        per_char.setdefault((alphabet, character), {})[int(match.group(1))] = _decode_png(data)
    if not per_char:
        raise FileNotFoundError(f"no Omniglot images found in {source}")
    keys = sorted(per_char)
    images = np.zeros((len(keys), DRAWERS, IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    for i, key in enumerate(keys):
        drawers = per_char[key]
        if sorted(drawers) != list(range(1, DRAWERS + 1)):
            raise ValueError(f"{key[0]}/{key[1]} has drawers {sorted(drawers)}, expected 1..{DRAWERS}")
        for d, img in drawers.items():
            images[i, d - 1] = img
    return OmniglotSplit(
        name=split,
        images=images,
        alphabets=tuple(a for a, _ in keys),
        characters=tuple(f"{a}/{c}" for a, c in keys),
    )


def _cache_paths(split: str, source: Path, cache_dir: Path) -> tuple[Path, Path]:
    stem = cache_dir / "omniglot" / f"{split}-{_fingerprint(source)}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def load_omniglot(
    split: Split = "background",
    root: str | os.PathLike[str] | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> OmniglotSplit:
    """Load an Omniglot split from ``root`` (folder holding the zips or extracted folders).

    ``root`` defaults to ``$FACEGATE_OMNIGLOT``. With ``cache`` the decoded images are
    stored bit-packed as ``.npy`` under ``cache_dir`` (default :func:`cache_root`).
    """
    if split not in EXPECTED_CHARACTERS:
        raise ValueError(f"unknown Omniglot split {split!r}; expected 'background' or 'evaluation'")
    base = _resolve_root(root)
    source = _source(base, f"images_{split}")
    if not cache:
        return _decode_split(split, source)
    npy, meta = _cache_paths(split, source, Path(cache_dir) if cache_dir else cache_root())
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            packed = np.load(npy)
            shape = tuple(info["shape"])
            images = np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).view(bool)
            return OmniglotSplit(split, images, tuple(info["alphabets"]), tuple(info["characters"]))
        except (OSError, ValueError, KeyError):
            pass  # a broken cache is rebuilt below
    data = _decode_split(split, source)
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        tmp = npy.with_suffix(".tmp.npy")
        np.save(tmp, np.packbits(data.images))
        os.replace(tmp, npy)
        meta.write_text(
            json.dumps(
                {
                    "shape": list(data.images.shape),
                    "alphabets": list(data.alphabets),
                    "characters": list(data.characters),
                }
            )
        )
    except OSError:
        pass  # a read-only home is no reason to fail
    return data


def _resolve_root(root: str | os.PathLike[str] | None) -> Path:
    if root is None:
        env = os.environ.get("FACEGATE_OMNIGLOT")
        if not env:
            raise FileNotFoundError("no Omniglot root given and $FACEGATE_OMNIGLOT is not set")
        root = env
    return Path(root).expanduser()


@cache
def _runs_cached(source: str, fingerprint: str) -> tuple[OneShotRun, ...]:
    del fingerprint  # part of the cache key only
    return tuple(_read_runs(Path(source)))


def load_official_runs(root: str | os.PathLike[str] | None = None) -> list[OneShotRun]:
    """The 20 official 20-way 1-shot runs of Lake et al. from ``all_runs.zip`` (or folder)."""
    base = _resolve_root(root)
    source = _source(base, "all_runs")
    return list(_runs_cached(str(source), _fingerprint(source)))


def _read_runs(source: Path) -> list[OneShotRun]:
    files = dict(_iter_all(source))
    runs = sorted({name.split("/")[0] for name in files if re.match(r"run\d+/", name)})
    out: list[OneShotRun] = []
    for run in runs:
        labels = files[f"{run}/class_labels.txt"].decode().split()
        # lines read "run01/test/item01.png run01/training/class08.png" (run prefix optional)
        pairs = [(_in_run(t, run), _in_run(c, run)) for t, c in zip(labels[0::2], labels[1::2], strict=True)]
        train_names = sorted(n for n in files if n.startswith(f"{run}/training/") and n.endswith(".png"))
        index = {n: i for i, n in enumerate(train_names)}
        test_imgs, answers = [], []
        for test_name, train_name in pairs:
            test_imgs.append(_decode_png(files[test_name]))
            answers.append(index[train_name])
        out.append(
            OneShotRun(
                name=run,
                training=np.stack([_decode_png(files[n]) for n in train_names]),
                test=np.stack(test_imgs),
                answers=np.array(answers, dtype=np.int64),
            )
        )
    if not out:
        raise FileNotFoundError(f"no runNN/ folders in {source}")
    return out


def _in_run(name: str, run: str) -> str:
    return name if name.startswith(f"{run}/") else f"{run}/{name}"


def _iter_all(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_file():
        with zipfile.ZipFile(source) as zf:
            for name in zf.namelist():
                if not name.endswith("/"):
                    yield name, zf.read(name)
    else:
        for path in source.rglob("*"):
            if path.is_file():
                yield path.relative_to(source).as_posix(), path.read_bytes()


def download_omniglot(
    root: str | os.PathLike[str],
    files: tuple[str, ...] = tuple(URLS),
    force: bool = False,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the official archives into ``root`` and verify their SHA-256
    (:func:`facegate.datasets.download.download`).

    Existing files with the right checksum are kept unless ``force``. A download with
    a wrong checksum is deleted and raises :class:`~facegate.datasets.download.ChecksumError`.
    """
    base = Path(root).expanduser()
    done: list[Path] = []
    for name in files:
        if name not in URLS:
            raise KeyError(f"unknown Omniglot archive {name!r}; choose from {sorted(URLS)}")
        if force:
            (base / name).unlink(missing_ok=True)
        done.append(download(RemoteFile(name, URLS[name], sha256=SHA256[name]), base, timeout))
    return done


@cache
def _box_matrix(src: int, dst: int) -> np.ndarray:
    """``(dst, src)`` area-averaging (box filter) resampling matrix."""
    m = np.zeros((dst, src), dtype=np.float32)
    scale = src / dst
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), src)):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return m / scale


def _ink_box(img: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``((top, bottom), (left, right))`` of the ink in one image, inclusive; None when blank."""
    ink = img > 0.5 if img.dtype != bool else img
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def _per_ink_box(images: np.ndarray, dtype: np.dtype, place: Callable[[np.ndarray, Any], np.ndarray]) -> np.ndarray:
    """Each image redrawn by ``place(image, ink_box)`` on a blank ``dtype`` canvas (copied as is without ink)."""
    out = np.zeros(images.shape, dtype=dtype)
    for i, img in enumerate(images):
        box = _ink_box(img)
        out[i] = img if box is None else place(img, box)
    return out


def _center(images: np.ndarray) -> np.ndarray:
    """Shift each image so that its ink's bounding-box centre is at the image centre."""
    h, w = images.shape[-2:]

    def place(img: np.ndarray, box: Any) -> np.ndarray:
        (top, bottom), (left, right) = box
        dy = int(round((h - 1) / 2 - (top + bottom) / 2))
        dx = int(round((w - 1) / 2 - (left + right) / 2))
        ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
        yt, xt = slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0))
        canvas = np.zeros_like(img)
        canvas[ys, xs] = img[yt, xt]
        return canvas

    return _per_ink_box(images, images.dtype, place)


def _fit(images: np.ndarray, fraction: float) -> np.ndarray:
    """Scale each image's ink so that its bounding box's longer side spans ``fraction``
    of the image (at most 3x up), centred; the size of a drawing stops mattering."""
    from PIL import Image

    h, w = images.shape[-2:]

    def place(img: np.ndarray, box: Any) -> np.ndarray:
        (top, bottom), (left, right) = box
        crop = img[top : bottom + 1, left : right + 1].astype(np.float32)
        scale = min(fraction * min(h, w) / max(crop.shape), 3.0)
        th, tw = (max(1, min(round(n * scale), m)) for n, m in zip(crop.shape, (h, w), strict=True))
        method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        resized = np.asarray(Image.fromarray(crop, mode="F").resize((tw, th), method), dtype=np.float32)
        y, x = (h - th) // 2, (w - tw) // 2
        canvas = np.zeros((h, w), dtype=np.float32)
        canvas[y : y + th, x : x + tw] = resized
        return canvas

    return _per_ink_box(images, np.float32, place)


def prepare(ink: np.ndarray, size: int = 28, center: bool = False, fit: float | None = None) -> np.ndarray:
    """Network input from ink images: ``(..., H, W)`` bool/float → ``(..., size, size)`` float32.

    Values are in [0, 1] with ink = 1, downsampled with an area (box) filter. With
    ``center`` the ink is first moved to the middle of the image; with ``fit`` it is
    also scaled so its longer side spans that fraction of the image.
    """
    arr = np.asarray(ink)
    lead, (h, w) = arr.shape[:-2], arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    if fit:
        flat = _fit(flat, fit)
    elif center:
        flat = _center(flat)
    flat = flat.astype(np.float32, copy=False)
    if (h, w) != (size, size):
        rows, cols = _box_matrix(h, size), _box_matrix(w, size)
        n = flat.shape[0]
        tmp = (flat.reshape(n * h, w) @ cols.T).reshape(n, h, size)  # (n, h, size)
        flat = (tmp.transpose(0, 2, 1).reshape(n * size, h) @ rows.T).reshape(n, size, size)
        flat = flat.transpose(0, 2, 1)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(*lead, size, size)
