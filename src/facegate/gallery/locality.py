"""An order of templates in which near ones come together, for writing a gallery in bulk.

pgvector builds its HNSW graph in the order rows are written (a bulk build scans the table in
order; inserts add one node each). Written in this order (nested k-means groups of about
:data:`LEAF` templates, the groups of one parent side by side, each group's templates in their
given order), its graph found exact search's best person somewhat more often for the same search
effort than written in a random order, a little faster: at 1M templates (``bench/pgvector_ab.py
--order copy`` against ``--order shuffled``, one build each) 0.760 / 0.863 / 0.940 at ``ef_search``
100 / 200 / 400 against 0.728 / 0.845 / 0.907; at 100k (``bench/pgvector_order.py``, three builds
each) 0.586 / 0.746 / 0.872 at 10 / 20 / 40 against 0.587 / 0.727 / 0.845 (nothing gained at the
smallest). Only numpy: the PostgreSQL extra does not install faiss.
"""

from __future__ import annotations

import numpy as np

#: templates per group at the bottom of the nesting; BRANCH groups at most under each parent
LEAF = 1000
BRANCH = 32
#: the k-means of a group trains on at most this many of its templates, for this many rounds
SAMPLE = 20_000
ROUNDS = 12
SEED = 0


def _assign(x: np.ndarray, centres: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """The nearest centre of each row (squared euclidean), in chunks."""
    c_sq = np.einsum("ij,ij->i", centres, centres)
    out = np.empty(len(x), np.int64)
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        out[start : start + chunk] = np.argmin(c_sq[None, :] - 2 * block @ centres.T, axis=1)
    return out


def _seeds(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` starting centres chosen k-means++'s way (each next one drawn in proportion to its
    squared distance from the nearest chosen; uniformly where all of them coincide)."""
    centres = [sample[rng.integers(len(sample))]]
    nearest = ((sample - centres[0]) ** 2).sum(axis=1, dtype=np.float64)
    for _ in range(1, k):
        total = nearest.sum()
        pick = rng.choice(len(sample), p=nearest / total) if total > 0 else rng.integers(len(sample))
        centres.append(sample[pick])
        nearest = np.minimum(nearest, ((sample - sample[pick]) ** 2).sum(axis=1, dtype=np.float64))
    return np.array(centres)


def kmeans_labels(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Each row's group among ``k`` (Lloyd's k-means on a sample, then every row assigned)."""
    sample = x[rng.choice(len(x), min(len(x), SAMPLE), replace=False)]
    centres = _seeds(sample, k, rng)
    for _ in range(ROUNDS):
        labels = _assign(sample, centres)
        for j in range(k):  # an emptied group keeps its centre
            members = sample[labels == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    return _assign(x, centres)


def locality_order(matrix: np.ndarray, seed: int = SEED) -> np.ndarray:
    """A permutation of ``matrix``'s rows that puts near templates together (see the module).
    Deterministic for a seed; rows of one bottom group keep their given order."""
    x = np.ascontiguousarray(matrix, dtype=np.float32)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []

    def place(rows: np.ndarray) -> None:
        if len(rows) <= LEAF:
            out.append(rows)
            return
        k = min(BRANCH, -(-len(rows) // LEAF))
        labels = kmeans_labels(x[rows], k, rng)
        for j in range(k):
            group = rows[labels == j]
            if len(group) == len(rows):  # k-means could not split them (identical templates)
                out.append(group)
                return
            if len(group):
                place(group)

    place(np.arange(len(x)))
    return np.concatenate(out) if out else np.arange(0)


__all__ = ["locality_order"]
