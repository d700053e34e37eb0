"""Verification metrics on distances, the way biometric evaluations report them.

Conventions used throughout: ``distances`` are dissimilarities (smaller means more
alike); ``labels`` are 1 for genuine (same-person) pairs and 0 for impostor pairs;
a pair is accepted as a match when ``distance <= threshold``.

FMR (false-match rate) is the share of impostor pairs accepted; FNMR (false
non-match rate) the share of genuine pairs rejected. The ROC is given as TPR = 1 -
FNMR against FPR = FMR over every distinct threshold.

A pair whose comparison could not be made (an image without a face: failure to
enrol) has distance ``+inf``. It is rejected at every finite threshold, so it
counts as a false non-match when genuine and stays in the impostor denominator
(ISO/IEC 19795-1's generalised FMR and FNMR), and :func:`accuracy` counts it as a
wrong decision whatever its label. NaN distances are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if d.shape != y.shape:
        raise ValueError(f"{d.size} distances but {y.size} labels")
    if not y.any() or y.all():
        raise ValueError("need both genuine (1) and impostor (0) pairs")
    if np.isnan(d).any() or (d == -np.inf).any():
        raise ValueError("distances must be finite, or +inf for a failed comparison")
    if not np.isfinite(d).any():
        raise ValueError("every comparison failed: no finite distance")
    return d, y


@dataclass(frozen=True)
class Roc:
    """ROC points, one per distinct threshold, thresholds ascending (FPR and TPR rise)."""

    thresholds: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray

    @property
    def fnmr(self) -> np.ndarray:
        return 1.0 - self.tpr


def roc_curve(distances: np.ndarray, labels: np.ndarray) -> Roc:
    """FPR and TPR at every distinct distance used as threshold, plus "accept nothing".

    The first point (threshold just below the smallest distance) is (0, 0); the last
    is (1, 1), or short of it when some comparisons failed (``+inf`` distances are
    never accepted).
    """
    d, y = _check(distances, labels)
    n_pos, n_neg = y.sum(), (~y).sum()
    finite = np.isfinite(d)
    d, y = d[finite], y[finite]
    order = np.argsort(d, kind="mergesort")
    d, y = d[order], y[order]
    last_of_run = np.r_[d[1:] != d[:-1], True]
    tp = np.cumsum(y)[last_of_run]
    fp = np.cumsum(~y)[last_of_run]
    thresholds = d[last_of_run]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    first = np.nextafter(thresholds[0], -np.inf)
    return Roc(np.r_[first, thresholds], fpr, tpr)


def auc(roc: Roc) -> float:
    """Area under the ROC curve (trapezoids), closed with a segment to (1, 1).

    When comparisons failed the measured curve stops short of (1, 1); the closing
    segment is what accepting the failed pairs at random would give.
    """
    fpr, tpr = np.r_[roc.fpr, 1.0], np.r_[roc.tpr, 1.0]
    return float(np.trapezoid(tpr, fpr))


def eer(distances: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold: where FMR and FNMR cross (interpolated)."""
    roc = roc_curve(distances, labels)
    fnmr = roc.fnmr
    diff = roc.fpr - fnmr  # rises from -1 to +1
    i = int(np.searchsorted(diff, 0.0))
    if i == len(diff):  # failed genuine pairs keep FNMR above FMR at every threshold
        return float(fnmr[-1]), float(roc.thresholds[-1])
    if i == 0:
        return float(roc.fpr[0]), float(roc.thresholds[0])
    if diff[i] == 0.0:
        return float(roc.fpr[i]), float(roc.thresholds[i])
    # linear interpolation between points i-1 and i
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    rate = roc.fpr[i - 1] + w * (roc.fpr[i] - roc.fpr[i - 1])
    threshold = roc.thresholds[i - 1] + w * (roc.thresholds[i] - roc.thresholds[i - 1])
    return float(rate), float(threshold)


def accuracy(distances: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right at ``threshold``; a failed comparison (``+inf``) is wrong."""
    d, y = _check(distances, labels)
    return float(np.mean(((d <= threshold) == y) & np.isfinite(d)))


def best_threshold(distances: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold of highest accuracy and that accuracy.

    Ties are broken towards the middle of the best run, and the threshold is put
    half-way between the neighbouring distances, so it generalises rather than
    sitting on one training pair.
    """
    d, y = _check(distances, labels)
    roc = roc_curve(d, y)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    n_neg_finite = int((~y & np.isfinite(d)).sum())  # a failed impostor pair is no correct rejection
    # integer counts: float products such as (1/3)*3 would break ties at random
    tp = np.rint(roc.tpr * n_pos).astype(np.int64)
    fp = np.rint(roc.fpr * n_neg).astype(np.int64)
    correct = tp + (n_neg_finite - fp)
    best = np.flatnonzero(correct == correct.max())
    i = int(best[len(best) // 2])
    t = roc.thresholds[i]
    if i == 0:  # accept nothing: stay strictly below the smallest distance
        return float(t), float(correct[i] / d.size)
    above = roc.thresholds[i + 1] if i + 1 < len(roc.thresholds) else t
    return float((t + above) / 2), float(correct[i] / d.size)


@dataclass(frozen=True)
class AtFmr:
    """The operating point at a target FMR: the largest threshold whose measured FMR stays
    at or below the target, and the rates measured there."""

    target_fmr: float
    threshold: float
    fmr: float
    fnmr: float
    n_genuine: int
    n_impostor: int

    @property
    def measurable(self) -> bool:
        """Whether there are impostor pairs enough (1 / target or more) to measure that FMR at all."""
        return self.n_impostor >= int(np.ceil(1.0 / self.target_fmr))


def at_fmr(distances: np.ndarray, labels: np.ndarray, target_fmr: float) -> AtFmr:
    """The largest threshold whose measured FMR does not exceed ``target_fmr``, with FMR and
    FNMR there. Below ``1 / target_fmr`` impostor pairs the figure is an extrapolation, not
    a measurement: :attr:`AtFmr.measurable` says so, and callers that report or store it refuse."""
    d, y = _check(distances, labels)
    roc = roc_curve(d, y)
    i = int(np.flatnonzero(roc.fpr <= target_fmr)[-1])
    return AtFmr(
        float(target_fmr),
        float(roc.thresholds[i]),
        float(roc.fpr[i]),
        float(roc.fnmr[i]),
        int(y.sum()),
        int((~y).sum()),
    )
