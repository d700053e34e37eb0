"""1:1 verification: are two photos of the same person?"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from facegate.distances import distance as metric_distance
from facegate.images import ImageInput
from facegate.models import get_model
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA, represent
from facegate.thresholds import find_threshold


@dataclass(frozen=True)
class VerifyResult:
    """The answer of :func:`verify`; ``to_dict`` uses deepface's ``verify`` keys."""

    verified: bool
    distance: float
    threshold: float
    model: str
    detector_backend: str
    similarity_metric: str
    facial_areas: dict[str, dict[str, Any]]
    time: float
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
) -> VerifyResult:
    """Decide whether the largest faces of ``img1`` and ``img2`` belong to one person.

    ``distance_metric`` defaults to the model's own; ``threshold`` defaults to the
    calibrated one for (model, metric). A photo without a face raises
    :class:`~facegate.errors.NoFaceError`: it is never a match.
    """
    start = time.perf_counter()
    metric = distance_metric or get_model(model_name).default_metric
    limit = find_threshold(model_name, metric, threshold)
    face1 = represent(img1, model_name, detector_backend, tta=tta, label="img1")[0]
    face2 = represent(img2, model_name, detector_backend, tta=tta, label="img2")[0]
    dist = metric_distance(face1.embedding, face2.embedding, metric)
    return VerifyResult(
        verified=bool(dist <= limit),
        distance=round(dist, 6),
        threshold=limit,
        model=model_name,
        detector_backend=detector_backend,
        similarity_metric=metric,
        facial_areas={"img1": face1.facial_area.to_dict(), "img2": face2.facial_area.to_dict()},
        time=round(time.perf_counter() - start, 4),
    )
