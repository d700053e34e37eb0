"""1:1 verification on a list of pairs: every number a biometric evaluation reports.

From the pairs and the embeddings of their images: the ROC and its AUC, the EER,
accuracy under the k-fold threshold protocol (mean ± std), FNMR at fixed FMRs
(only where there are enough impostor pairs to measure that FMR), and the
failure-to-enrol rate, whose pairs count as errors rather than disappearing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facegate.datasets.lfw import Pair
from facegate.decisions import DEFAULT_FMR
from facegate.distances import get_metric
from facegate.evaluate.cache import Embedded
from facegate.evaluate.metrics import Roc, at_fmr, auc, eer, roc_curve
from facegate.evaluate.protocol import KFoldResult, SystemResult, assign_folds, kfold_accuracy

#: the false-match rates FNMR is reported at
FMR_TARGETS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)


@dataclass(frozen=True)
class PairScores:
    """Distances (``+inf`` where an image failed), labels (1 = same person) and folds of pairs."""

    pairs: list[Pair]
    distances: np.ndarray
    labels: np.ndarray
    folds: np.ndarray

    @property
    def failed(self) -> np.ndarray:
        return ~np.isfinite(self.distances)


def score_pairs(pairs: Sequence[Pair], images: str | Path, embedded: Embedded, metric: str) -> PairScores:
    """The distance of every pair under ``metric``, from embeddings of ``images/<pair path>``."""
    root = Path(images)
    where = embedded.index()
    first = np.array([where[str(root / p.first)] for p in pairs], dtype=np.int64)
    second = np.array([where[str(root / p.second)] for p in pairs], dtype=np.int64)
    ok = embedded.ok
    both = ok[first] & ok[second]
    d = np.full(len(pairs), np.inf)
    if both.any():
        d[both] = get_metric(metric)(embedded.vectors[first[both]], embedded.vectors[second[both]])
    labels = np.array([p.same for p in pairs], dtype=np.int64)
    folds = np.array([p.fold for p in pairs], dtype=np.int64)
    return PairScores(list(pairs), d, labels, folds)


@dataclass(frozen=True)
class FmrPoint:
    """FNMR at one target FMR, or why it could not be measured."""

    target: float
    fnmr: float | None
    threshold: float | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"target_fmr": self.target, "fnmr": self.fnmr, "threshold": self.threshold, "note": self.note}


@dataclass(frozen=True)
class VerificationResult(SystemResult):
    """The verification figures of one system (model, detector, metric) on one pair list."""

    system: dict[str, Any]
    n_genuine: int
    n_impostor: int
    n_images: int
    failed_images: dict[str, str]
    failed_pairs: int
    auc: float
    eer: float
    eer_threshold: float
    kfold: KFoldResult
    fold_source: str
    fmr_points: list[FmrPoint]
    roc: Roc
    scores: PairScores = field(repr=False)
    #: the threshold ``verify`` would use for this (model, metric), and the accuracy it gives here
    configured_threshold: float | None = None
    configured_accuracy: float | None = None

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) lines for a printed or Markdown table."""
        k = self.kfold
        out = [
            ("pairs (genuine / impostor)", f"{self.n_genuine} / {self.n_impostor}"),
            ("failure to enrol", f"{len(self.failed_images)} of {self.n_images} images ({self.fte_rate:.2%})"),
            ("pairs with a failed image (counted as errors)", str(self.failed_pairs)),
            (
                f"accuracy ({len(k.accuracies)}-fold, {self.fold_source})",
                f"{k.mean:.4f} ± {k.std:.4f} (threshold {k.threshold:.4f})",
            ),
            ("AUC", f"{self.auc:.4f}"),
            ("EER", f"{self.eer:.4f} (threshold {self.eer_threshold:.4f})"),
        ]
        if self.configured_threshold is not None and self.configured_accuracy is not None:
            out.append(
                (
                    f"accuracy at facegate's distance threshold for FMR {DEFAULT_FMR:g}",
                    f"{self.configured_accuracy:.4f} (threshold {self.configured_threshold:.4f})",
                )
            )
        for p in self.fmr_points:
            value = f"{p.fnmr:.4f} (threshold {p.threshold:.4f})" if p.fnmr is not None else f"n/a: {p.note}"
            out.append((f"FNMR @ FMR={p.target:g}", value))
        return out

    def to_dict(self) -> dict[str, Any]:
        k = self.kfold
        return {
            "system": self.system,
            "pairs": {"genuine": self.n_genuine, "impostor": self.n_impostor},
            "images": self.n_images,
            "failure_to_enrol": {
                "images": len(self.failed_images),
                "rate": self.fte_rate,
                "pairs_counted_as_errors": self.failed_pairs,
                "errors": self.failed_images,
            },
            "accuracy": {
                "mean": k.mean,
                "std": k.std,
                "folds": k.accuracies.tolist(),
                "thresholds": k.thresholds.tolist(),
                "threshold": k.threshold,
                "fold_source": self.fold_source,
            },
            "configured_threshold": {"threshold": self.configured_threshold, "accuracy": self.configured_accuracy},
            "auc": self.auc,
            "eer": {"rate": self.eer, "threshold": self.eer_threshold},
            "fnmr_at_fmr": [p.to_dict() for p in self.fmr_points],
            "roc": {
                "fpr": self.roc.fpr.tolist(),
                "tpr": self.roc.tpr.tolist(),
                "thresholds": [_finite(t) for t in self.roc.thresholds],
            },
        }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def fmr_points(scores: PairScores, targets: Sequence[float] = FMR_TARGETS) -> list[FmrPoint]:
    """FNMR at each target FMR; "n/a" with the reason where impostor pairs are too few."""
    n_impostor = int((scores.labels == 0).sum())
    points = []
    for target in targets:
        found = at_fmr(scores.distances, scores.labels, target)
        if not found.measurable:
            need = int(np.ceil(1.0 / target))
            points.append(FmrPoint(target, None, None, f"needs ≥ {need} impostor pairs, has {n_impostor}"))
        else:
            points.append(FmrPoint(target, found.fnmr, found.threshold))
    return points


def verification_metrics(
    scores: PairScores,
    system: dict[str, Any],
    failed_images: dict[str, str],
    n_images: int,
    folds: int = 10,
    seed: int = 0,
    fmr_targets: Sequence[float] = FMR_TARGETS,
) -> VerificationResult:
    """Every verification figure of ``scores``.

    The pair file's own folds are used when it has several (LFW View 2); otherwise
    the pairs are split into ``folds`` stratified folds with ``seed``.
    """
    if np.unique(scores.folds).size >= 2:
        fold_ids, source = scores.folds, "folds of the pair file"
    else:
        fold_ids, source = assign_folds(scores.labels, folds, seed), f"stratified, seed {seed}"
    rate, threshold = eer(scores.distances, scores.labels)
    roc = roc_curve(scores.distances, scores.labels)
    return VerificationResult(
        system=system,
        n_genuine=int(scores.labels.sum()),
        n_impostor=int((scores.labels == 0).sum()),
        n_images=n_images,
        failed_images=failed_images,
        failed_pairs=int(scores.failed.sum()),
        auc=auc(roc),
        eer=rate,
        eer_threshold=threshold,
        kfold=kfold_accuracy(scores.distances, scores.labels, fold_ids),
        fold_source=source,
        fmr_points=fmr_points(scores, fmr_targets),
        roc=roc,
        scores=scores,
    )
