"""The k-fold threshold protocol of LFW View 2: pick on k-1 folds, test on the k-th.

A threshold chosen on the pairs it is then scored on flatters the system; LFW's
protocol instead picks the best-accuracy threshold on nine folds, measures accuracy
on the tenth, and reports the mean and standard deviation over the ten rotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facegate.evaluate.metrics import accuracy, best_threshold


@dataclass(frozen=True)
class KFoldResult:
    """Per-fold held-out accuracies and the thresholds picked on the other folds."""

    accuracies: np.ndarray
    thresholds: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.accuracies.std())

    @property
    def threshold(self) -> float:
        """Mean of the picked thresholds (what a deployment would use)."""
        return float(self.thresholds.mean())


def assign_folds(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number in ``0..k-1`` per pair, stratified: genuine and impostor pairs spread evenly."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    y = np.asarray(labels).astype(bool).ravel()
    rng = np.random.default_rng(seed)
    folds = np.empty(y.size, dtype=np.int64)
    for kind in (True, False):
        idx = np.flatnonzero(y == kind)
        folds[rng.permutation(idx)] = np.arange(idx.size) % k
    return folds


def kfold_accuracy(distances: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """Accuracy on each fold at the threshold of best accuracy on all the other folds.

    A failed comparison (``+inf`` distance) counts as a wrong decision on its test fold.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    f = np.asarray(folds).ravel()
    names = np.unique(f)
    if names.size < 2:
        raise ValueError("k-fold needs at least 2 folds")
    accs, ths = [], []
    for name in names:
        test = f == name
        t, _ = best_threshold(d[~test], y[~test])
        ths.append(t)
        accs.append(_fold_accuracy(d[test], y[test], t))
    return KFoldResult(np.array(accs), np.array(ths))


def _fold_accuracy(d: np.ndarray, y: np.ndarray, t: float) -> float:
    """Accuracy of one fold, defined even when the fold holds a single kind of pair."""
    if y.all() or not y.any() or not np.isfinite(d).any():
        return float(np.mean(((d <= t) == y) & np.isfinite(d)))
    return accuracy(d, y, t)


class SystemResult:
    """What every evaluation result of one system shares: its name and its failure-to-enrol rate.

    Mixed into result dataclasses that have ``system`` (model, detector, metric, tta),
    ``n_images`` and ``failed_images``.
    """

    system: dict[str, Any]
    n_images: int
    failed_images: dict[str, str]

    @property
    def fte_rate(self) -> float:
        return len(self.failed_images) / self.n_images if self.n_images else 0.0

    @property
    def name(self) -> str:
        s = self.system
        return f"{s['model']}/{s['detector']}/{s['metric']}" + ("+tta" if s.get("tta") else "")
