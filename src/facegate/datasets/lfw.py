"""Labeled Faces in the Wild: pair files and image paths.

Reads both LFW pair formats: View 1's ``pairsDevTrain.txt`` / ``pairsDevTest.txt``
(a count line, then N genuine and N impostor pairs) and View 2's ``pairs.txt`` (a
"folds count" line, then 10 folds of 300 genuine + 300 impostor pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facegate.datasets.download import RemoteFile, download


@dataclass(frozen=True)
class Pair:
    """Two image paths (relative to the images folder) and whether they show one person."""

    first: str
    second: str
    same: bool
    fold: int = 0


def image_path(name: str, number: int | str) -> str:
    """LFW's relative path of image ``number`` of person ``name``."""
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path: str | Path) -> list[Pair]:
    """Every pair of an LFW pair file, with its fold (0 for View 1 files)."""
    lines = [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty")
    header = [int(v) for v in lines[0]]
    folds, per_kind = (header[0], header[1]) if len(header) == 2 else (1, header[0])
    body = lines[1:]
    if len(body) != folds * per_kind * 2:
        raise ValueError(f"{path}: the header promises {folds * per_kind * 2} pairs, the file holds {len(body)}")
    pairs = []
    for i, fields in enumerate(body):
        fold = i // (2 * per_kind)
        if len(fields) == 3:
            name, a, b = fields
            pairs.append(Pair(image_path(name, a), image_path(name, b), True, fold))
        elif len(fields) == 4:
            name1, a, name2, b = fields
            pairs.append(Pair(image_path(name1, a), image_path(name2, b), False, fold))
        else:
            raise ValueError(f"{path}: line {i + 2} is not an LFW pair: {' '.join(fields)}")
    return pairs


def people_images(lfw: str | Path, pair_file: str) -> tuple[list[str], list[int]]:
    """Every image, under ``lfw/images``, of every person a pair file names, with a
    person number per image (people sorted by name)."""
    root = Path(lfw)
    pairs = read_pairs(root / pair_file)
    people = sorted({p.first.split("/")[0] for p in pairs} | {p.second.split("/")[0] for p in pairs})
    paths, labels = [], []
    for i, person in enumerate(people):
        for image in sorted((root / "images" / person).glob("*.jpg")):
            paths.append(str(image))
            labels.append(i)
    return paths, labels


def pair_images(pairs: list[Pair]) -> list[str]:
    """The distinct images the pairs use, sorted."""
    return sorted({p.first for p in pairs} | {p.second for p in pairs})


# -- official files, for users with a network (tests never download) -------------
#: LFW's home; the files below are served from it
LFW_URL = "http://vis-www.cs.umass.edu/lfw/"


def _remote(name: str, md5: str, sha256: str | None = None) -> RemoteFile:
    return RemoteFile(name, LFW_URL + name, sha256=sha256, md5=md5)


#: the published files and their checksums (MD5s as torchvision lists them; SHA-256s
#: as scikit-learn lists them for the same files, checked here against local copies)
LFW_FILES: dict[str, RemoteFile] = {
    r.name: r
    for r in (
        _remote("lfw-deepfunneled.tgz", md5="68331da3eb755a505a502b5aacb3c201"),
        _remote("lfw.tgz", md5="a17d05bd522c52d84eca14327a23d494"),
        _remote(
            "pairs.txt",
            md5="9f1ba174e4e1c508ff7cdf10ac338a7d",
            sha256="ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
        ),
        _remote(
            "pairsDevTrain.txt",
            md5="4f27cbf15b2da4a85c1907eb4181ad21",
            sha256="1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
        ),
        _remote(
            "pairsDevTest.txt",
            md5="5132f7440eb68cf58910c8a45a2ac10b",
            sha256="7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
        ),
    )
}


def download_lfw(directory: str | Path, names: tuple[str, ...] = ("pairs.txt", "lfw-deepfunneled.tgz")) -> list[Path]:
    """Fetch LFW files into ``directory``, each verified against its checksum.

    The ``.tgz`` is left packed: ``tar xzf lfw-deepfunneled.tgz`` gives
    ``lfw-deepfunneled/<Name>/<Name>_NNNN.jpg``, the images folder for ``pairs.txt``.
    """
    return [download(LFW_FILES[name], directory) for name in names]
