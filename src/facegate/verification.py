"""1:1 verification: are two photos of the same person?"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from facegate.decisions import OperatingPoint, scoring_for, verification_point
from facegate.decisions.normalisation import CohortStats
from facegate.decisions.scoring import Scoring
from facegate.detection import Detector
from facegate.distances import distance as metric_distance
from facegate.distances import pairwise
from facegate.images import ImageInput
from facegate.models import EmbeddingModel, get_model
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA, Face, represent


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
    #: deepface's key: how sure the answer is that this is no stranger, in percent
    #: (100 x (1 - estimated FMR)); None without a calibrated curve
    confidence: float | None = None
    #: where the threshold came from
    threshold_source: str = ""
    #: how many faces each photo held (every pair was compared; ``facial_areas`` are the best pair's)
    faces: dict[str, int] | None = None
    #: the claimed name, for a door check against the gallery
    identity: str | None = None
    #: what ran the network, and the test-time augmentation ("flip" or "none")
    engine: str = ""
    tta: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(
    img1: ImageInput,
    img2: ImageInput,
    model_name: str | EmbeddingModel = DEFAULT_MODEL,
    detector_backend: str | Detector = DEFAULT_DETECTOR,
    distance_metric: str | None = None,
    threshold: float | None = None,
    tta: bool = DEFAULT_TTA,
    fmr: float | None = None,
    normalise: bool | None = None,
) -> VerifyResult:
    """Decide whether ``img1`` and ``img2`` show one person.

    Every face of one photo is compared with every face of the other (as deepface
    does), and the best-scoring pair decides; ``facial_areas`` says which faces
    those were and ``faces`` how many each photo held.

    ``distance_metric`` defaults to the model's own. The threshold is the one at
    which (model, metric) falsely matches strangers at rate ``fmr`` (default
    :data:`~facegate.decisions.DEFAULT_FMR`, 1 in 1,000), unless a raw ``threshold``
    is given. With cohort normalisation (``normalise``, on by default where it was
    calibrated) the decision is on the normalised score, and ``threshold`` in the
    result is the distance that score threshold means for these two faces. A photo
    without a face raises :class:`~facegate.errors.NoFaceError`: it is never a
    match. ``model_name`` and ``detector_backend`` are registry names or instances,
    so weights can be given in code (``MODELS.create("omniglot", weights=PATH)``).
    """
    start = time.perf_counter()
    model = get_model(model_name)
    metric = distance_metric or model.default_metric
    scoring = scoring_for(model, metric, normalise, threshold)
    point = verification_point(scoring, threshold, fmr)
    faces1 = represent(img1, model_name, detector_backend, "all", tta=tta, label="img1")
    faces2 = represent(img2, model_name, detector_backend, "all", tta=tta, label="img2")
    face1, face2, score = _best_pair(faces1, faces2, scoring, metric)
    dist = metric_distance(face1.embedding, face2.embedding, metric)
    stats1, stats2 = scoring.stats(face1.embedding), scoring.stats(face2.embedding)
    return VerifyResult(
        verified=bool(score <= point.threshold),
        distance=round(dist, 6),
        threshold=round(scoring.distance_limit(point.threshold, stats1, stats2), 6),
        model=model.name,
        detector_backend=face1.detector,
        similarity_metric=metric,
        facial_areas={"img1": face1.facial_area.to_dict(), "img2": face2.facial_area.to_dict()},
        time=round(time.perf_counter() - start, 4),
        **decision_rates(point, score),
        faces={"img1": len(faces1), "img2": len(faces2)},
        engine=face1.engine,
        tta=face1.tta,
    )


def _best_pair(faces1: list[Face], faces2: list[Face], scoring: Scoring, metric: str) -> tuple[Face, Face, float]:
    """The pair of faces, one from each photo, that scores best (deepface compares every pair)."""
    a = np.stack([f.embedding for f in faces1])
    b = np.stack([f.embedding for f in faces2])
    d = pairwise(a, b, metric)
    sa, sb = scoring.stats(a), scoring.stats(b)
    scores = np.stack([scoring.score(d[i], _row(sa, i), sb) for i in range(len(faces1))])
    i, j = np.unravel_index(int(np.argmin(scores)), scores.shape)
    return faces1[i], faces2[j], float(scores[i, j])


def _row(stats: CohortStats | None, i: int) -> CohortStats | None:
    return None if stats is None else CohortStats(stats.mean[i : i + 1], stats.std[i : i + 1])


def decision_rates(point: OperatingPoint, distance: float) -> dict[str, Any]:
    """A 1:1 result's error-rate fields: the target FMR and the FMR at ``distance``."""
    estimated = point.rate_at(distance)
    return {
        "target_fmr": point.target,
        "estimated_fmr": None if estimated is None else float(f"{estimated:.3g}"),
        "confidence": None if estimated is None else round(100 * (1 - estimated), 2),
        "threshold_source": point.source,
    }
