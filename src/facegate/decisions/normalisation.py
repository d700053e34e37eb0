"""Score normalisation against a cohort of strangers (adaptive symmetric normalisation).

A raw distance means more in some parts of face space than in others: a face that
resembles many people sits close to strangers too. AS-norm (Matějka et al., 2017)
rescales each comparison by how close each side comes to its ``top_k`` nearest
cohort faces (faces of people who are neither of the two):

    score = ((d - mean_a) / std_a + (d - mean_b) / std_b) / 2

Smaller is more alike, as for distances. For one pair the score rises linearly
with the distance, so a score threshold is also a distance threshold *for that
pair* (:func:`distance_threshold`): results keep "accepted when distance <=
threshold", with a threshold adapted to the two faces.

The packaged cohort holds one embedding per LFW training person (never a test
person), made by ``scripts/calibrate_thresholds.py``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources

import numpy as np

from facegate.distances import Metric, get_metric

#: cohort faces each side is compared with
TOP_K = 50
#: rows whose statistics are computed at once
CHUNK = 4096


@dataclass(frozen=True)
class CohortStats:
    """Mean and spread of each vector's ``top_k`` smallest cohort distances."""

    mean: np.ndarray
    std: np.ndarray


class AsNorm:
    """Adaptive symmetric normalisation against a fixed cohort of embeddings."""

    name = "asnorm"

    def __init__(self, cohort: np.ndarray, metric: Metric | str, top_k: int = TOP_K) -> None:
        self.cohort = np.asarray(cohort, dtype=np.float32)
        self.metric = get_metric(metric) if isinstance(metric, str) else metric
        self.top_k = min(int(top_k), len(self.cohort))
        # the cohort's norms (or unit rows) computed once: a probe's statistics took 0.16 ms with
        # them recomputed at every call (metric.pairwise) against 0.04 ms (1,722 cohort faces)
        self._distances = self.metric.prepare(self.cohort)

    def stats(self, vectors: np.ndarray) -> CohortStats:
        """Cohort statistics of each row of ``vectors``."""
        rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        mean, std = np.empty(len(rows)), np.empty(len(rows))
        for start in range(0, len(rows), CHUNK):  # bounded memory for a large gallery
            d = self._distances(rows[start : start + CHUNK])
            top = np.partition(d, self.top_k - 1, axis=1)[:, : self.top_k].astype(np.float64)
            mean[start : start + CHUNK], std[start : start + CHUNK] = top.mean(axis=1), top.std(axis=1)
        return CohortStats(mean, np.maximum(std, 1e-6))

    @cached_property
    def reference(self) -> tuple[float, float, float]:
        """The cohort's own medians, each face against the others (itself left out): the distance
        to its nearest, and the mean and spread of its ``top_k`` nearest (a typical probe's)."""
        d = self.metric.pairwise(self.cohort, self.cohort)
        np.fill_diagonal(d, np.inf)
        top = np.sort(d, axis=1)[:, : self.top_k]
        return float(np.median(top[:, 0])), float(np.median(top.mean(axis=1))), float(np.median(top.std(axis=1)))

    def index_penalty(self, people: CohortStats) -> np.ndarray:
        """What an approximate index adds to each person's squared distances (one number per
        person, >= 0) so that its order of templates follows these scores' order of people.

        A person whose cohort distances are far (large mean) or narrow (small spread) scores
        better at the same distance: their distance threshold (:func:`distance_threshold`) lies
        further out. Against the :attr:`reference` probe, at the score where a reference person's
        threshold is the reference distance ``r`` (the cohort's median nearest stranger), a
        person's threshold lies ``shift`` further out than the reference person's; ranking by
        ``d - shift`` ranks by that score, and near ``r`` so does ranking the index's squared
        distances lowered by ``shift`` times their slope there (:meth:`Metric.index_slope`). The
        penalty is that lowering subtracted from the lowering of an extreme person (mean six
        reference spreads above the reference, no spread), so that it is never negative.

        At 1M templates (``bench/normalised_candidates.py``), exact search's best person under
        these scores owned one of the first 64 templates by distance for 0.951 of the tuning
        probes, and of the first 64 by penalised distance for all of them."""
        nearest, mean, spread = self.reference
        slope = self.metric.index_slope(nearest)
        w_ref, w = 1 / spread, 1 / np.asarray(people.std, np.float64)
        shift = (w_ref * (nearest - mean) + w * (np.asarray(people.mean, np.float64) - nearest)) / (w_ref + w)
        most = mean + 6 * spread - nearest  # the shift of an extreme person (w -> infinity)
        return np.maximum(slope * (most - shift), 0.0)


def normalise(d: np.ndarray, a: CohortStats, b: CohortStats) -> np.ndarray:
    """AS-norm scores of distances ``d`` (rows: ``a``'s vectors, columns: ``b``'s, or
    elementwise when both stats have ``d``'s shape)."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 2 and a.mean.shape != d.shape:
        return ((d - a.mean[:, None]) / a.std[:, None] + (d - b.mean[None, :]) / b.std[None, :]) / 2
    return ((d - a.mean) / a.std + (d - b.mean) / b.std) / 2


def distance_threshold(score_threshold: float, a: CohortStats, b: CohortStats) -> np.ndarray:
    """The distance at which the pair's score equals ``score_threshold``."""
    return (2 * score_threshold + a.mean / a.std + b.mean / b.std) / (1 / a.std + 1 / b.std)


def cohort_bytes(cohort: np.ndarray) -> bytes:
    """The packaged file format of a cohort: an ``.npy`` of float16 rows."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(cohort, dtype=np.float16), allow_pickle=False)
    return buffer.getvalue()


@cache
def packaged_cohort(name: str) -> np.ndarray:
    """A cohort shipped in ``facegate/data/`` (``name`` as the table entry gives it)."""
    data = resources.files("facegate").joinpath("data", name).read_bytes()
    return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
