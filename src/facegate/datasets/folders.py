"""Labelled face sets on disk: one person per folder, or one person per file-name prefix.

Layouts, each a detector in a registry, tried in order:

- ``person-folders``: ``DIR/<person>/<photo>`` (LFW's ``images/``, ORL's ``sN/N.pgm``,
  any ``DIR/<person>/*.jpg``);
- ``flat-prefix``: ``DIR/<person>.<anything>`` image files side by side (Yale's
  ``subject01.glasses``, GIFs without an image extension).

Image files are recognised by extension or, failing that, by their first bytes, so
extension-less photos are found and ``README``/``LABELS.txt`` are not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facegate.images import IMAGE_SUFFIXES
from facegate.registry import Registry

_TEXT_EXTENSIONS = frozenset({".txt", ".md", ".tsv", ".csv", ".json", ".yaml", ".yml", ".zip", ".tgz", ".gz"})
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"P2", b"P5", b"P3", b"P6", b"II*\x00", b"MM\x00*")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a regular file that looks like an image (extension or magic bytes)."""
    if not path.is_file() or path.name.startswith("."):
        return False
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    if suffix in _TEXT_EXTENSIONS:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (:func:`is_image_file`; ``recursive``: below it too), sorted."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in entries if is_image_file(p))


@dataclass(frozen=True)
class FaceSet:
    """Photos (paths relative to ``root``) and the person each shows."""

    root: Path
    paths: list[str]
    labels: list[str]
    layout: str

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError("one label per path")

    @property
    def people(self) -> list[str]:
        return sorted(set(self.labels))

    def counts(self) -> Counter[str]:
        return Counter(self.labels)

    def files(self) -> list[str]:
        """Absolute (root-joined) file paths."""
        return [str(self.root / p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, people: int | None = None, min_photos: int = 1) -> FaceSet:
        """The people with at least ``min_photos`` photos; with ``people``, the N with most photos.

        Ties in photo count are broken by name, so the choice is reproducible.
        """
        counts = self.counts()
        eligible = sorted((p for p, n in counts.items() if n >= min_photos), key=lambda p: (-counts[p], p))
        if people is not None:
            eligible = eligible[:people]
        keep = set(eligible)
        pairs = [(p, lab) for p, lab in zip(self.paths, self.labels, strict=True) if lab in keep]
        return FaceSet(self.root, [p for p, _ in pairs], [lab for _, lab in pairs], self.layout)


Layout = Callable[[Path], "FaceSet | None"]
LAYOUTS: Registry[Layout] = Registry("layout")


@LAYOUTS.register("person-folders")
def person_folders(root: Path) -> FaceSet | None:
    """``root/<person>/<photo>``: every sub-folder holding images is a person."""
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(image_files(sub), key=lambda q: _natural(q.name)):
            paths.append(f"{sub.name}/{f.name}")
            labels.append(sub.name)
    return FaceSet(root, paths, labels, "person-folders") if paths else None


@LAYOUTS.register("flat-prefix")
def flat_prefix(root: Path) -> FaceSet | None:
    """``root/<person>.<condition>``: image files whose name before the first dot is the person."""
    files = sorted((f for f in root.iterdir() if "." in f.name.strip(".") and is_image_file(f)), key=lambda q: q.name)
    labels = [f.name.split(".", 1)[0] for f in files]
    if not files or len(set(labels)) == len(labels):  # every file its own person: not this layout
        return None
    return FaceSet(root, [f.name for f in files], labels, "flat-prefix")


#: the order layouts are tried in when none is named (folders win over file prefixes)
LAYOUT_ORDER: tuple[str, ...] = ("person-folders", "flat-prefix")


def _natural(name: str) -> tuple:
    """Sort key putting ``2.pgm`` before ``10.pgm``."""
    stem = name.split(".", 1)[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def load_folder(root: str | Path, layout: str | None = None) -> FaceSet:
    """The labelled photos under ``root``, in the named layout or the first that fits."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"no such folder: {base}")
    names = [layout] if layout is not None else [n for n in LAYOUT_ORDER if n in LAYOUTS]
    for name in names:
        found = LAYOUTS.get(name)(base)
        if found is not None and len(found):
            return found
    raise ValueError(
        f"{base} holds no labelled photos: expected DIR/<person>/<photo> or DIR/<person>.<anything> image files"
    )
