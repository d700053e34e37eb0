"""1:1 verification: are two photos of the same person?"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from facegate.decisions import OperatingPoint, scoring_for, verification_point
from facegate.distances import distance as metric_distance
from facegate.images import ImageInput
from facegate.models import get_model
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA, represent


@dataclass(frozen=True)
class VerifyResult:
    """The answer of :func:`verify`; ``to_dict`` uses deepface's ``verify`` keys, plus
    the error rate behind the decision: the target false-match rate the threshold was
    chosen for (None when the caller gave a raw threshold) and the FMR estimated at the
    observed distance (how often a stranger comes this close)."""

    verified: bool
    distance: float
    threshold: float
    model: str
    detector_backend: str
    similarity_metric: str
    facial_areas: dict[str, dict[str, Any]]
    time: float
    target_fmr: float | None = None
    estimated_fmr: float | None = None
    #: where the threshold came from
    threshold_source: str = ""
    #: the claimed name, for a door check against the gallery
    identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(
    img1: ImageInput,
    img2: ImageInput,
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    distance_metric: str | None = None,
    threshold: float | None = None,
    tta: bool = DEFAULT_TTA,
    fmr: float | None = None,
    normalise: bool | None = None,
) -> VerifyResult:
    """Decide whether the largest faces of ``img1`` and ``img2`` belong to one person.

    ``distance_metric`` defaults to the model's own. The threshold is the one at
    which (model, metric) falsely matches strangers at rate ``fmr`` (default
    :data:`~facegate.decisions.DEFAULT_FMR`, 1 in 1,000), unless a raw ``threshold``
    is given. With cohort normalisation (``normalise``, on by default where it was
    calibrated) the decision is on the normalised score, and ``threshold`` in the
    result is the distance that score threshold means for these two faces. A photo
    without a face raises :class:`~facegate.errors.NoFaceError`: it is never a
    match.
    """
    start = time.perf_counter()
    metric = distance_metric or get_model(model_name).default_metric
    scoring = scoring_for(model_name, metric, normalise, threshold)
    point = verification_point(scoring, threshold, fmr)
    face1 = represent(img1, model_name, detector_backend, tta=tta, label="img1")[0]
    face2 = represent(img2, model_name, detector_backend, tta=tta, label="img2")[0]
    dist = metric_distance(face1.embedding, face2.embedding, metric)
    stats1, stats2 = scoring.stats(face1.embedding), scoring.stats(face2.embedding)
    score = float(scoring.score(np.array([dist]), stats1, stats2)[0])
    return VerifyResult(
        verified=bool(score <= point.threshold),
        distance=round(dist, 6),
        threshold=round(scoring.distance_limit(point.threshold, stats1, stats2), 6),
        model=model_name,
        detector_backend=detector_backend,
        similarity_metric=metric,
        facial_areas={"img1": face1.facial_area.to_dict(), "img2": face2.facial_area.to_dict()},
        time=round(time.perf_counter() - start, 4),
        **decision_rates(point, score),
    )


def decision_rates(point: OperatingPoint, distance: float) -> dict[str, Any]:
    """A 1:1 result's error-rate fields: the target FMR and the FMR at ``distance``."""
    estimated = point.rate_at(distance)
    return {
        "target_fmr": point.target,
        "estimated_fmr": None if estimated is None else float(f"{estimated:.3g}"),
        "threshold_source": point.source,
    }
