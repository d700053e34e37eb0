"""Decisions at a stated error rate: FMR curves, operating points, fusion, quality.

The floor between the pipeline (embeddings) and the verbs (verify, the gallery): it
turns "accept at most 1 stranger in 1,000" into a distance threshold for a given
model, metric and gallery size, and says what error rate a decision stood for.
"""

from facegate.decisions.curves import CalibrationError, FmrCurve
from facegate.decisions.fusion import DEFAULT_FUSION, FUSIONS, mean_embedding
from facegate.decisions.operating_point import (
    OperatingPoint,
    effective_comparisons,
    find_threshold,
    identification_point,
    verification_point,
)
from facegate.decisions.scoring import Scoring, scoring_for
from facegate.decisions.table import DEFAULT_FMR, DEFAULT_FPIR

__all__ = [
    "DEFAULT_FMR",
    "DEFAULT_FPIR",
    "DEFAULT_FUSION",
    "FUSIONS",
    "CalibrationError",
    "FmrCurve",
    "OperatingPoint",
    "Scoring",
    "effective_comparisons",
    "find_threshold",
    "identification_point",
    "mean_embedding",
    "scoring_for",
    "verification_point",
]
