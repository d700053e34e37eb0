"""Operating points: the threshold a decision uses and the error rate it stands for.

A 1:1 door check allows a target false-match rate (FMR) for the claimed person; a
1:K identification allows a target false-positive identification rate (FPIR: the
share of strangers named as someone). Both become a distance threshold through the
(model, metric) :class:`~facegate.decisions.curves.FmrCurve`, counting how many
templates a stranger is compared with: a person enrolled from three photos offers
three chances to a look-alike, a gallery of 100 people offers 100 or more.

Comparisons are not independent chances (several photos of one face; strangers
who resemble many people), so the calibration measures the *effective* count of
independent comparisons that m photos of one person are worth (``template_effect``)
and that a gallery of n templates is worth (``gallery_effect``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from facegate.decisions.curves import CalibrationError, FmrCurve
from facegate.decisions.scoring import Scoring, scoring_for
from facegate.decisions.table import DEFAULT_FMR, DEFAULT_FPIR, ThresholdUnavailableError

Kind = Literal["verification", "identification"]


@dataclass(frozen=True)
class OperatingPoint:
    """What a decision was measured against: its threshold, target and where they came from."""

    kind: Kind
    threshold: float
    #: the target rate (FMR for verification, FPIR for identification); None for a raw threshold
    target: float | None
    #: independent template comparisons the rate accounts for
    comparisons: float
    #: where the threshold came from
    source: str
    #: False when the target cannot be met at this size: the threshold is the strictest measured
    reachable: bool = True
    curve: FmrCurve | None = field(default=None, repr=False, compare=False)

    def rate_at(self, distance: float | None) -> float | None:
        """The FMR (verification) or FPIR (identification) of accepting at ``distance``."""
        if self.curve is None or distance is None or not np.isfinite(distance):
            return None
        return float(self.curve.false_match_rate(distance, self.comparisons))

    @property
    def expected_rate(self) -> float | None:
        """The FMR or FPIR at the threshold itself."""
        return self.rate_at(self.threshold)

    @property
    def expected_fnmr(self) -> float | None:
        """Share of genuine single-photo comparisons rejected at the threshold (an upper
        bound for a person enrolled from several photos)."""
        return None if self.curve is None else round(self.curve.fnmr_at(self.threshold), 6)

    def to_dict(self) -> dict[str, Any]:
        rate = "fmr" if self.kind == "verification" else "fpir"
        expected = self.expected_rate
        return {
            "score_threshold": round(self.threshold, 6),
            f"target_{rate}": self.target,
            f"expected_{rate}": None if expected is None else float(f"{expected:.3g}"),
            "expected_fnmr": self.expected_fnmr,
            "comparisons": round(self.comparisons, 3),
            "reachable": self.reachable,
            "source": self.source,
        }


def effective_comparisons(effect: Mapping[str, float] | None, count: float, log_scale: bool = False) -> float:
    """The effective number of independent comparisons that ``count`` comparisons are worth.

    ``effect`` maps measured counts to effective counts (photos of one person, or
    templates of a whole gallery); between and beyond them it is interpolated and
    extended linearly (``log_scale``: linearly in log-log, a power law). Without a
    measurement every comparison counts fully, which overstates the risk, never
    understates it.
    """
    if count <= 1:
        return float(max(count, 0))
    if not effect:
        return float(count)
    keys = sorted(effect, key=float)
    x = np.array([float(k) for k in keys])
    y = np.array([float(effect[k]) for k in keys])
    if log_scale:
        x, y, c = np.log(x), np.log(y), np.log(count)
    else:
        c = float(count)
    if c <= x[-1]:
        value = float(np.interp(c, x, y))
    else:
        slope = (y[-1] - y[-2]) / (x[-1] - x[-2]) if len(x) > 1 else 1.0
        value = float(y[-1] + slope * (c - x[-1]))
    return float(np.exp(value)) if log_scale else value


def _resolve(kind: Kind, scoring: Scoring, threshold: float | None, target: float | None, comparisons: float):
    curve = scoring.curve
    if threshold is not None:
        source = "distance threshold given by the caller"
        return OperatingPoint(kind, float(threshold), None, comparisons, source, True, curve)
    if curve is None:
        if scoring.fixed_threshold is None:
            raise ThresholdUnavailableError(scoring.unavailable)
        return OperatingPoint(kind, float(scoring.fixed_threshold), None, comparisons, scoring.source)
    operators = kind == "verification" and scoring.default_fmr is not None  # `facegate calibrate --target-fmr`
    if operators and target is None and scoring.fixed_threshold is not None and comparisons == 1.0:
        # the operator calibrated this exact threshold, for one template, at their own target FMR
        goal = scoring.default_fmr
        source = f"FMR {goal:g} calibrated on {scoring.source}"
        return OperatingPoint(kind, float(scoring.fixed_threshold), goal, comparisons, source, True, curve)
    default = (scoring.default_fmr if operators else DEFAULT_FMR) if kind == "verification" else DEFAULT_FPIR
    goal = default if target is None else float(target)
    if not 0.0 < goal < 1.0:
        raise CalibrationError(f"a target rate must be between 0 and 1, got {goal:g}")
    what = "FMR" if kind == "verification" else "FPIR"
    source = f"{what} {goal:g} on the {scoring.kind} curve of {scoring.source}"
    try:
        return OperatingPoint(kind, curve.threshold_for(goal, comparisons), goal, comparisons, source, True, curve)
    except CalibrationError:
        if kind == "verification":
            raise
        return OperatingPoint(kind, float(curve.thresholds[0]), goal, comparisons, source, False, curve)


def verification_point(
    scoring: Scoring, threshold: float | None = None, fmr: float | None = None, templates: int = 1
) -> OperatingPoint:
    """The 1:1 operating point against a person enrolled with ``templates`` photos.

    A raw ``threshold`` is a plain distance threshold (no normalisation, no target);
    the FMR estimated at a distance is then still reported when a curve exists.
    """
    comparisons = max(effective_comparisons(scoring.template_effect, templates), 1.0)
    return _resolve("verification", scoring, threshold, fmr, comparisons)


#: galleries with more people than this sum their template effects per distinct template count
LARGE_GALLERY = 10_000


def identification_point(
    scoring: Scoring, template_counts: Iterable[int], threshold: float | None = None, fpir: float | None = None
) -> OperatingPoint:
    """The open-set operating point for a gallery whose people hold ``template_counts`` photos.

    The gallery's size in independent comparisons is the sum of its people's
    template effects, mapped through the measured ``gallery_effect`` (strangers that
    resemble many people make comparisons with a large gallery overlap).
    """
    counts = np.asarray(list(template_counts) if not isinstance(template_counts, np.ndarray) else template_counts)
    if len(counts) > LARGE_GALLERY:  # one effect per distinct count: a million people in milliseconds, not a minute
        sizes, people = np.unique(counts.astype(int), return_counts=True)
        templates = sum(
            effective_comparisons(scoring.template_effect, int(m)) * int(k) for m, k in zip(sizes, people, strict=True)
        )
    else:
        templates = sum(effective_comparisons(scoring.template_effect, int(m)) for m in counts)
    comparisons = max(effective_comparisons(scoring.gallery_effect, templates, log_scale=True), 1.0)
    return _resolve("identification", scoring, threshold, fpir, comparisons)


def find_threshold(model: str, metric: str, override: float | None = None, fmr: float | None = None) -> float:
    """The plain-distance 1:1 threshold of (model, metric): the caller's, else the one at
    ``fmr`` (default :data:`DEFAULT_FMR`) on the distance curve, else a fixed calibrated one."""
    if override is not None:
        return float(override)
    return verification_point(scoring_for(model, metric, normalise=False), fmr=fmr).threshold
