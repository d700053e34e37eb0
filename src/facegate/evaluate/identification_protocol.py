"""k-fold cross-validation of identification over the photos of each person.

Each person's photos are shuffled (with a seed) and dealt into k folds. In round i,
fold i's photos are the probes and the other folds' photos are enrolled; "half the
photos enrolled, half as probes, then swap" is k = 2. Closed-set figures enrol
every person. Open-set figures leave a share of the people out of the gallery
altogether; all their photos are non-mated probes in every round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.evaluate.identification import (
    OpenSetPoint,
    PersonScores,
    cmc,
    open_set,
    person_scores,
    rank1,
    ranks,
)
from facegate.evaluate.protocol import SystemResult

FPIR_TARGETS: tuple[float, ...] = (0.1, 0.01)


def photo_folds(labels: Sequence, k: int, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of each photo, dealing each person's shuffled photos round-robin."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    for person in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == person))
        folds[idx] = (np.arange(idx.size) + int(rng.integers(k))) % k
    return folds


@dataclass(frozen=True)
class IdentificationResult(SystemResult):
    """Closed- and open-set identification figures of one system on one labelled set."""

    system: dict[str, Any]
    n_people: int
    n_images: int
    failed_images: dict[str, str]
    folds: int
    rank1_folds: np.ndarray
    cmc: np.ndarray
    n_unknown_people: int
    open_set: list[dict[str, Any]] = field(default_factory=list)
    ranks: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def rank1(self) -> float:
        """Rank-1 rate over all probes of all rounds."""
        return float(self.cmc[0])

    def rows(self) -> list[tuple[str, str]]:
        out = [
            ("people / images", f"{self.n_people} / {self.n_images}"),
            (
                "failure to enrol (probes count as misses)",
                f"{len(self.failed_images)} of {self.n_images} images ({self.fte_rate:.2%})",
            ),
            (
                f"closed-set rank-1 ({self.folds}-fold over photos)",
                f"{self.rank1:.4f} (per fold {self.rank1_folds.mean():.4f} ± {self.rank1_folds.std():.4f})",
            ),
        ]
        for k in (5, 10):
            if len(self.cmc) >= k:
                out.append((f"CMC rank-{k}", f"{self.cmc[k - 1]:.4f}"))
        for p in self.open_set:
            key = f"open-set DIR @ FPIR={p['target_fpir']:g} ({self.n_unknown_people} people not enrolled)"
            if p["dir"] is None:
                out.append((key, f"n/a: {p['note']}"))
            else:
                searches = f"{p['mated_searches']} mated / {p['non_mated_searches']} non-mated searches"
                value = f"{p['dir']:.4f} (FPIR {p['fpir']:.4f}, threshold {_fmt(p['threshold'])}; {searches})"
                out.append((key, value))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "people": self.n_people,
            "images": self.n_images,
            "failure_to_enrol": {
                "images": len(self.failed_images),
                "rate": self.fte_rate,
                "errors": self.failed_images,
            },
            "folds": self.folds,
            "rank1": self.rank1,
            "rank1_folds": self.rank1_folds.tolist(),
            "cmc": self.cmc.tolist(),
            "open_set": {"unknown_people": self.n_unknown_people, "points": self.open_set},
        }


def _fmt(t: float | None) -> str:
    return "n/a" if t is None else ("inf" if not np.isfinite(t) else f"{t:.4f}")


def identification_kfold(
    vectors: np.ndarray,
    labels: Sequence,
    system: dict[str, Any],
    failed_images: dict[str, str],
    k: int = 2,
    seed: int = 0,
    unknown_fraction: float = 0.5,
    fpir_targets: Sequence[float] = FPIR_TARGETS,
    max_rank: int = 10,
) -> IdentificationResult:
    """Closed-set rank-1/CMC and open-set DIR@FPIR under k-fold over each person's photos.

    ``vectors`` has one row per photo, NaN where the photo failed.
    """
    labels = np.asarray(labels)
    vectors = np.asarray(vectors, dtype=np.float64)
    metric = system["metric"]
    folds = photo_folds(labels, k, seed)
    people = np.unique(labels)

    all_ranks, per_fold = [], []
    for i in range(k):
        probe = folds == i
        if not probe.any():
            continue
        ps = person_scores(vectors[~probe], labels[~probe], vectors[probe], metric)
        r = ranks(ps, labels[probe])
        all_ranks.append(r)
        per_fold.append(rank1(r))
    rank_all = np.concatenate(all_ranks)
    curve = cmc(rank_all, max_rank=min(max_rank, len(people)))

    n_unknown = int(round(unknown_fraction * len(people)))
    open_points: list[dict[str, Any]] = []
    if 1 <= n_unknown < len(people):
        rng = np.random.default_rng(seed + 1)
        unknown = set(rng.choice(people, n_unknown, replace=False).tolist())
        is_unknown = np.array([lab in unknown for lab in labels.tolist()])
        open_points = _open_set_kfold(vectors, labels, folds, is_unknown, k, metric, fpir_targets)
    else:
        n_unknown = 0

    return IdentificationResult(
        system=system,
        n_people=len(people),
        n_images=len(labels),
        failed_images=failed_images,
        folds=k,
        rank1_folds=np.array(per_fold),
        cmc=curve,
        n_unknown_people=n_unknown,
        open_set=open_points,
        ranks=rank_all,
    )


def _open_set_kfold(
    vectors: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    is_unknown: np.ndarray,
    k: int,
    metric: str,
    targets: Sequence[float],
) -> list[dict[str, Any]]:
    """Open-set points pooled over rounds: thresholds from all rounds' non-mated probes together."""
    mated_rows, mated_labels, non_rows = [], [], []
    for i in range(k):
        gallery = (folds != i) & ~is_unknown
        probe = (folds == i) & ~is_unknown
        if not gallery.any() or not probe.any():
            continue
        mated = person_scores(vectors[gallery], labels[gallery], vectors[probe], metric)
        non = person_scores(vectors[gallery], labels[gallery], vectors[is_unknown], metric)
        mated_rows.append(mated)
        mated_labels.append(labels[probe])
        non_rows.append(non)
    if not mated_rows:
        return []
    points = _pooled_points(mated_rows, mated_labels, non_rows, targets)
    n_mated = sum(len(m.scores) for m in mated_rows)
    n_non = sum(len(n.scores) for n in non_rows)
    return [
        {
            "target_fpir": p.target_fpir,
            "dir": p.dir,
            "fpir": p.fpir,
            "threshold": p.threshold,
            "note": p.note,
            "mated_searches": n_mated,
            "non_mated_searches": n_non,
        }
        for p in points
    ]


def _pooled_points(
    mated_rows: list[PersonScores],
    mated_labels: list[np.ndarray],
    non_rows: list[PersonScores],
    targets: Sequence[float],
) -> list[OpenSetPoint]:
    """Pool rounds: each round's probes are scored against that round's gallery only."""
    # Align every round on the union of people (a person missing from a round's gallery scores +inf).
    people = np.unique(np.concatenate([m.people for m in mated_rows]))

    def widen(ps: PersonScores) -> np.ndarray:
        out = np.full((ps.scores.shape[0], len(people)), np.inf)
        out[:, np.searchsorted(people, ps.people)] = ps.scores
        return out

    mated = PersonScores(np.vstack([widen(m) for m in mated_rows]), people)
    non = PersonScores(np.vstack([widen(n) for n in non_rows]), people)
    return open_set(mated, np.concatenate(mated_labels), non, targets)
