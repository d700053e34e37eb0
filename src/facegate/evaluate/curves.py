"""Measuring decision curves on labelled embeddings: FMR curves, template and gallery effects.

Everything here compares every embedding with every other of a labelled set (one
matrix), so a development set of a few thousand images gives millions of impostor
pairs. ``scripts/calibrate_thresholds.py`` builds the packaged table with it,
``facegate calibrate`` a user's, and ``bench/decisions.py`` the README's figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facegate.decisions.curves import FmrCurve
from facegate.decisions.fusion import Fusion, fuse, person_means
from facegate.decisions.normalisation import AsNorm, CohortStats, normalise
from facegate.distances import get_metric

#: photo counts per person whose template effect is measured
TEMPLATE_COUNTS: tuple[int, ...] = (2, 3, 4, 5)
#: gallery sizes (people, one photo each) whose effect on strangers is simulated
GALLERY_SIZES: tuple[int, ...] = (3, 10, 30, 100, 300, 1000)
#: the FPIR at which the gallery effect is read off the simulation
GALLERY_EFFECT_FPIR = 0.01


@dataclass(frozen=True)
class Scorer:
    """Scores between labelled embeddings: plain distances, or AS-normalised ones."""

    metric: str
    norm: AsNorm | None = None

    @property
    def kind(self) -> str:
        return "distance" if self.norm is None else "asnorm"

    def stats(self, vectors: np.ndarray) -> CohortStats | None:
        return None if self.norm is None else self.norm.stats(vectors)

    def matrix(self, a: np.ndarray, b: np.ndarray, sa: CohortStats | None = None, sb: CohortStats | None = None):
        """Scores of every row of ``a`` against every row of ``b``."""
        d = get_metric(self.metric).pairwise(a, b).astype(np.float64)
        if self.norm is None:
            return d
        sa = sa if sa is not None else self.stats(a)
        sb = sb if sb is not None else self.stats(b)
        return normalise(d, sa, sb)


def curve_from_labelled(
    vectors: np.ndarray, labels: np.ndarray, scorer: Scorer, provenance: dict[str, Any] | None = None
) -> tuple[FmrCurve, np.ndarray]:
    """The FMR curve over every pair of a labelled set, and the score matrix it came from."""
    scores = scorer.matrix(vectors, vectors)
    same = labels[:, None] == labels[None, :]
    upper = np.triu(np.ones(same.shape, dtype=bool), 1)
    curve = FmrCurve.from_scores(scores[upper & ~same], scores[upper & same], provenance)
    return curve, scores


def person_scores(
    probes: np.ndarray,
    templates: np.ndarray,
    starts: np.ndarray,
    scorer: Scorer,
    fusion: Fusion,
    probe_stats: CohortStats | None = None,
) -> np.ndarray:
    """Scores of probes against people (templates grouped by ``starts``), fused as a gallery does."""
    metric = get_metric(scorer.metric)
    d = metric.pairwise(probes, templates).astype(np.float64)
    closest = np.minimum.reduceat(d, starts, axis=1)
    means = person_means(templates, starts)
    to_mean = metric.pairwise(probes, means).astype(np.float64)
    fused = fuse(fusion, closest, to_mean)
    if scorer.norm is None:
        return fused
    sp = probe_stats if probe_stats is not None else scorer.stats(probes)
    return normalise(fused, sp, scorer.stats(means))


def effective_count(rate: float, single_fmr: float) -> float:
    """n such that ``1 - (1 - single_fmr) ** n == rate``."""
    if single_fmr <= 0 or rate <= 0:
        return 1.0
    return float(np.log1p(-min(rate, 1 - 1e-12)) / np.log1p(-single_fmr))


def template_effect(
    vectors: np.ndarray,
    labels: np.ndarray,
    scorer: Scorer,
    fusion: Fusion,
    threshold: float,
    single_fmr: float,
    counts: Sequence[int] = TEMPLATE_COUNTS,
) -> dict[str, float]:
    """How many independent templates m photos of one person are worth, at ``threshold``.

    Every person with at least m photos is enrolled from their first m; every image
    of another person is a stranger probe; the share of (stranger, person) scores
    within the threshold gives the effective count.
    """
    effect = {"1": 1.0}
    stats = scorer.stats(vectors)
    for m in counts:
        people = [np.flatnonzero(labels == p)[:m] for p in np.unique(labels) if (labels == p).sum() >= m]
        if not people:
            break
        rows = np.concatenate(people)
        starts = np.arange(0, len(rows), m)
        s = person_scores(vectors, vectors[rows], starts, scorer, fusion, stats)
        owner = labels[rows[starts]]
        stranger = labels[:, None] != owner[None, :]
        rate = float(np.mean(s[stranger] <= threshold))
        effect[str(m)] = round(effective_count(rate, single_fmr), 3)
    return effect


def gallery_effect(
    vectors: np.ndarray,
    labels: np.ndarray,
    scorer: Scorer,
    curve: FmrCurve,
    sizes: Sequence[int] = GALLERY_SIZES,
    repeats: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """How many independent comparisons a gallery of n people (one photo each) is worth.

    For each size, galleries of n people are drawn at random (one photo each); every
    image of the other people is a stranger. The threshold at which 1% of strangers
    come within it of somebody is read off, and the FMR curve says how many
    independent comparisons give that rate there. The median over draws is kept.
    """
    rng = np.random.default_rng(seed)
    people = np.unique(labels)
    stats = scorer.stats(vectors)
    scores = scorer.matrix(vectors, vectors, stats, stats)
    effect = {"1": 1.0}
    for n in sizes:
        if n >= len(people) - 10:
            break
        values = []
        for _ in range(repeats):
            enrolled = rng.choice(people, n, replace=False)
            photos = np.array([rng.choice(np.flatnonzero(labels == p)) for p in enrolled])
            strangers = np.flatnonzero(~np.isin(labels, enrolled))
            best = scores[np.ix_(strangers, photos)].min(axis=1)
            t = float(np.quantile(best, GALLERY_EFFECT_FPIR))
            values.append(effective_count(GALLERY_EFFECT_FPIR, curve.fmr_at(t)))
        effect[str(n)] = round(float(np.median(values)), 2)
    return effect
