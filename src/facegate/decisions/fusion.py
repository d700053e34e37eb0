"""Fusion: several photos of one person, or several frames of one probe, as one score.

- Templates: a person enrolled from several photos is compared by their closest
  template (``min``), by their mean embedding (``mean``), or by the average of the
  two distances (``both``); :func:`fuse`.
- Probes: a door camera can take several frames; their embeddings are averaged
  into one probe (:func:`mean_embedding`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from facegate.distances import l2_normalise

Fusion = Literal["min", "mean", "both"]
FUSIONS: tuple[str, ...] = ("min", "mean", "both")
#: how a gallery fuses a person's templates unless told otherwise (chosen on LFW's
#: training people: bench/decisions.py)
DEFAULT_FUSION: Fusion = "both"


def check_fusion(fusion: str) -> Fusion:
    if fusion not in FUSIONS:
        raise ValueError(f"unknown template fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
    return fusion  # type: ignore[return-value]


def mean_embedding(vectors: np.ndarray) -> np.ndarray:
    """The mean of several embeddings of one face; unit length again when they are."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    return person_means(v, np.array([0]))[0]


#: groups whose means are computed at once: a gallery's float64 sums of every person at once
#: (640 MB at 628,000 people) took 5.4 s to a first open, most of it the fresh memory's page
#: faults, against 0.6 s in blocks of this many people
MEANS_BLOCK = 4_096


def person_means(matrix: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The mean of each group of rows starting at ``starts`` (summed in float64, in row order);
    unit length again when the rows are."""
    matrix = np.asarray(matrix)
    starts = np.asarray(starts, np.int64)
    counts = np.diff(np.r_[starts, len(matrix)])
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))  # np.linalg.norm: 20 times slower here
    unit = bool(np.allclose(norms, 1.0, atol=1e-3))
    means = np.empty((len(starts), matrix.shape[-1]), np.float32)
    for first in range(0, len(starts), MEANS_BLOCK):  # each group's sum is the same in any block
        block = slice(first, first + MEANS_BLOCK)
        means[block] = _means(matrix, starts[block], counts[block], unit)
    return means


def _means(matrix: np.ndarray, starts: np.ndarray, counts: np.ndarray, unit: bool) -> np.ndarray:
    sums = matrix[starts].astype(np.float64)
    # each group's k-th row added to the groups that have one, k = 1, 2, ...: the rows in the
    # order np.add.reduceat adds them, which took 3.5 s at a million rows against about 0.6 s here
    by_size = np.argsort(-counts, kind="stable")
    smaller = -counts[by_size]  # ascending
    for k in range(1, int(counts.max(initial=1))):
        longer = by_size[: np.searchsorted(smaller, -k, side="left")]  # the groups of more than k rows
        sums[longer] += matrix[starts[longer] + k]
    means = sums / counts[:, None]
    return l2_normalise(means) if unit else means


def fuse(fusion: Fusion, closest, to_mean):
    """A person's distance from their closest template's distance and their mean's."""
    if fusion == "min":
        return closest
    if fusion == "mean":
        return to_mean
    return (closest + to_mean) / 2
