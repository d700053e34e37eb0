"""Same / different pairs drawn from any labelled face set, reproducibly.

Genuine pairs are drawn without replacement from all same-person photo pairs,
impostor pairs from all different-person photo pairs; both lists are dealt into
stratified folds so the k-fold threshold protocol applies as on LFW. The result is
a list of LFW :class:`~facegate.datasets.lfw.Pair` objects with paths relative to
the set's root, and can be written in LFW's View 2 format.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from facegate.datasets.folders import FaceSet
from facegate.datasets.lfw import Pair


def make_pairs(
    faces: FaceSet,
    n_genuine: int | None = None,
    n_impostor: int | None = None,
    folds: int = 10,
    seed: int = 0,
) -> list[Pair]:
    """Up to ``n_genuine`` same-person and ``n_impostor`` different-person pairs (``None``: all).

    With ``n_impostor=None`` as many impostor pairs as genuine ones are drawn
    (balanced, as LFW), unless ``n_genuine`` is also ``None``, which takes every
    pair of photos.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(faces.labels)
    genuine = _same_person_pairs(labels)
    n_possible_impostor = len(labels) * (len(labels) - 1) // 2 - len(genuine)
    if n_genuine is not None and n_genuine < len(genuine):
        genuine = genuine[np.sort(rng.choice(len(genuine), n_genuine, replace=False))]
    if n_impostor is None:
        n_impostor = n_possible_impostor if n_genuine is None else len(genuine)
    impostor = _different_person_pairs(labels, min(n_impostor, n_possible_impostor), rng)
    pairs: list[Pair] = []
    for kind, chosen in ((True, genuine), (False, impostor)):
        fold_of = (rng.permutation(len(chosen)) % folds) if folds > 1 else np.zeros(len(chosen), int)
        for (i, j), fold in zip(chosen.tolist(), fold_of.tolist(), strict=True):
            pairs.append(Pair(faces.paths[i], faces.paths[j], kind, int(fold)))
    return pairs


def _same_person_pairs(labels: np.ndarray) -> np.ndarray:
    rows = []
    for person in np.unique(labels):
        idx = np.flatnonzero(labels == person)
        rows.extend(combinations(idx.tolist(), 2))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _different_person_pairs(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct index pairs (i < j) of photos of different people, uniformly at random."""
    size = len(labels)
    if n <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    total = size * (size - 1) // 2
    if n > total // 4:  # dense: enumerate everything and choose
        i, j = np.triu_indices(size, k=1)
        keep = labels[i] != labels[j]
        i, j = i[keep], j[keep]
        pick = np.sort(rng.choice(len(i), n, replace=False))
        return np.stack([i[pick], j[pick]], axis=1)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n:  # sparse: rejection sampling
        a = rng.integers(size, size=2 * (n - len(chosen)))
        b = rng.integers(size, size=a.size)
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            if x != y and labels[x] != labels[y]:
                chosen.add((min(x, y), max(x, y)))
                if len(chosen) == n:
                    break
    return np.array(sorted(chosen), dtype=np.int64)


def write_pairs(pairs: list[Pair], path: str | Path) -> Path:
    """Write pairs as ``first<TAB>second<TAB>same<TAB>fold`` lines (facegate's generic pair file).

    LFW's own format names photos by person and number and cannot hold arbitrary
    paths; :func:`read_generic_pairs` reads this one back.
    """
    out = Path(path)
    lines = ["# facegate pairs: first\tsecond\tsame(1/0)\tfold"]
    lines += [f"{p.first}\t{p.second}\t{int(p.same)}\t{p.fold}" for p in pairs]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def read_generic_pairs(path: str | Path) -> list[Pair]:
    """Pairs written by :func:`write_pairs`."""
    pairs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4 or fields[2] not in ("0", "1"):
            raise ValueError(f"{path}: line {n} is not 'first<TAB>second<TAB>0|1<TAB>fold'")
        pairs.append(Pair(fields[0], fields[1], fields[2] == "1", int(fields[3])))
    return pairs


def load_pairs(path: str | Path) -> list[Pair]:
    """Pairs from an LFW pair file (View 1 or View 2) or a facegate generic pair file."""
    from facegate.datasets.lfw import read_pairs

    with Path(path).open(encoding="utf-8") as fh:
        first = fh.readline()
    return read_generic_pairs(path) if first.startswith("#") else read_pairs(path)
