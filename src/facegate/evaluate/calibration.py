"""Turning a target false-match rate into a threshold, measured on development pairs.

A threshold means nothing to a user; "at most 1 impostor in 1,000 accepted" does.
:func:`calibrate_threshold` picks the largest threshold whose measured FMR on the
development pairs stays at or below the target, and reports the FMR and FNMR
actually measured there. It refuses targets the data cannot measure (fewer than
1 / target impostor pairs).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facegate.decisions.curves import CalibrationError, FmrCurve
from facegate.decisions.table import save_threshold
from facegate.evaluate.metrics import AtFmr, at_fmr


@dataclass(frozen=True)
class Calibration(AtFmr):
    """A threshold for a target FMR and what it gives on the development pairs."""

    failed_pairs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("target FMR", f"{self.target_fmr:g}"),
            ("threshold", f"{self.threshold:.4f}"),
            (
                "measured FMR",
                f"{self.fmr:.5f} ({round(self.fmr * self.n_impostor)} of {self.n_impostor} impostor pairs)",
            ),
            (
                "measured FNMR",
                f"{self.fnmr:.5f} ({round(self.fnmr * self.n_genuine)} of {self.n_genuine} genuine pairs)",
            ),
            ("pairs with a failed image (rejected)", str(self.failed_pairs)),
        ]


def pair_curve(distances: np.ndarray, labels: np.ndarray, **provenance: Any) -> FmrCurve:
    """The FMR curve of development pairs (pairs with a failed image left out)."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    return FmrCurve.from_scores(d[~y], d[y], provenance)


def calibrate_threshold(distances: np.ndarray, labels: np.ndarray, target_fmr: float) -> Calibration:
    """The largest threshold with measured FMR ≤ ``target_fmr``, and the FMR/FNMR there."""
    if not 0.0 < target_fmr < 1.0:
        raise CalibrationError(f"the target FMR must be between 0 and 1, got {target_fmr}")
    point = at_fmr(distances, labels, target_fmr)
    if not point.measurable:
        raise CalibrationError(
            f"FMR {target_fmr:g} needs at least {int(np.ceil(1.0 / target_fmr))} impostor pairs to be measured; "
            f"the set has {point.n_impostor}"
        )
    failed = int((~np.isfinite(np.asarray(distances, dtype=np.float64))).sum())
    return Calibration(**asdict(point), failed_pairs=failed)


def save_calibration(
    model: str,
    metric: str,
    calibration: Calibration,
    dataset: str,
    curve: FmrCurve | None = None,
    effects: dict[str, dict[str, float]] | None = None,
    **details: Any,
) -> Path:
    """Write the threshold where ``verify`` and ``Gallery`` read it, with how it was found.

    With the ``curve`` of the same pairs, other targets (``--fmr``) and identification
    thresholds for any gallery size are read from the operator's data too; ``effects``
    (``template_effect``, ``gallery_effect``, measured on labelled photos) make those
    thresholds as tight as the data shows, instead of counting every template fully.
    """
    if curve is not None:
        details["scores"] = {"distance": {"curve": curve.to_dict(), **(effects or {})}}
        details["default_score"] = "distance"
    return save_threshold(
        model,
        metric,
        calibration.threshold,
        target_fmr=calibration.target_fmr,
        fmr=calibration.fmr,
        fnmr=calibration.fnmr,
        genuine_pairs=calibration.n_genuine,
        impostor_pairs=calibration.n_impostor,
        dataset=dataset,
        calibrated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **details,
    )
