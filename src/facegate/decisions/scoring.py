"""How comparisons of one (model, metric) are scored and what the scores mean.

A :class:`Scoring` bundles what the calibration table says for a (model, metric):
the kind of score decisions use (the plain ``distance``, or ``asnorm``: distances
normalised against a cohort), its FMR curve, the measured template and gallery
effects, and the cohort. The verbs (``verify``, the gallery) ask it for scores and
operating points and never read the table themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from facegate.decisions.curves import FmrCurve
from facegate.decisions.normalisation import AsNorm, CohortStats, distance_threshold, normalise, packaged_cohort
from facegate.decisions.table import ThresholdUnavailableError, threshold_entry

if TYPE_CHECKING:  # pragma: no cover
    from facegate.models.base import EmbeddingModel


@dataclass(frozen=True)
class Scoring:
    model: str
    metric: str
    #: "distance" or "asnorm"
    kind: str
    curve: FmrCurve | None
    template_effect: dict[str, float] | None = None
    gallery_effect: dict[str, float] | None = None
    norm: AsNorm | None = field(default=None, repr=False)
    #: a calibrated distance threshold (a model's own, or the operator's ``facegate calibrate``)
    fixed_threshold: float | None = None
    #: the FMR the operator calibrated ``fixed_threshold`` for: their default 1:1 target
    default_fmr: float | None = None
    #: where it was calibrated
    source: str = ""
    #: why no decision can be made (no calibration for this model and metric)
    unavailable: str = ""

    def stats(self, vectors: np.ndarray) -> CohortStats | None:
        """Cohort statistics of embeddings (None without normalisation)."""
        return None if self.norm is None else self.norm.stats(vectors)

    def score(self, distances: np.ndarray, probe: CohortStats | None, people: CohortStats | None) -> np.ndarray:
        """Scores of one probe's distances to people (normalised when this scoring normalises)."""
        if self.norm is None or probe is None or people is None:
            return np.asarray(distances, dtype=np.float64)
        return normalise(distances, _broadcast(probe, len(people.mean)), people)

    def index_penalty(self, people: CohortStats | None) -> np.ndarray | None:
        """What an approximate index adds to each person's squared distances so that its order
        follows these scores (:meth:`AsNorm.index_penalty`); None for plain distances."""
        return None if self.norm is None or people is None else self.norm.index_penalty(people)

    def distance_limit(self, score_threshold: float, probe: CohortStats | None, person: CohortStats | None) -> float:
        """The distance threshold that ``score_threshold`` means for this probe and person."""
        if self.norm is None or probe is None or person is None:
            return float(score_threshold)
        return float(distance_threshold(score_threshold, probe, person)[0])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "score": self.kind, "source": self.source}


def _broadcast(stats: CohortStats, n: int) -> CohortStats:
    return CohortStats(np.broadcast_to(stats.mean, (n,)), np.broadcast_to(stats.std, (n,)))


def scoring_for(
    model: str | EmbeddingModel, metric: str, normalise: bool | None = None, threshold: float | None = None
) -> Scoring:
    """The scoring of (model, metric) from the calibration table (``model``: a registry name or an instance).

    ``normalise=None`` takes the table's default score; ``False`` forces plain
    distances, ``True`` cohort normalisation (when calibrated). A raw ``threshold``
    always means a plain distance, so it turns normalisation off.
    """
    entry_of = model
    model = model if isinstance(model, str) else model.name
    try:
        entry = threshold_entry(entry_of, metric)
    except ThresholdUnavailableError as exc:
        if threshold is None:  # enrolment needs no threshold; a decision will say what is missing
            return Scoring(model, metric, "distance", None, unavailable=str(exc))
        entry = {"threshold": float(threshold), "calibrated_on": "the caller"}
    source = entry.get("calibrated_on", "your calibration")
    scores: dict[str, Any] = entry.get("scores", {})
    if not scores:
        return Scoring(model, metric, "distance", None, fixed_threshold=float(entry["threshold"]), source=source)
    kind = entry.get("default_score", "distance")
    if threshold is not None or normalise is False:
        kind = "distance"
    elif normalise is True:
        kind = "asnorm"
    if kind not in scores:
        kind = "distance"
    chosen = scores[kind]
    norm = None
    if kind == "asnorm":
        cohort = packaged_cohort(chosen["cohort"])
        norm = AsNorm(cohort, metric, int(chosen["top_k"]))
    return Scoring(
        model,
        metric,
        kind,
        _parse_curve(json.dumps(chosen["curve"], sort_keys=True)),
        chosen.get("template_effect"),
        chosen.get("gallery_effect"),
        norm,
        fixed_threshold=entry.get("threshold") if kind == "distance" else None,
        default_fmr=entry.get("target_fmr"),
        source=source,
    )


@cache
def _parse_curve(text: str) -> FmrCurve:
    """A curve from its JSON text, parsed once per distinct curve."""
    return FmrCurve.from_dict(json.loads(text))
