"""Score-to-error-rate curves: what a distance threshold means in false matches.

An :class:`FmrCurve` is measured once on a large set of impostor comparisons (every
cross-identity pair of a development set: millions of pairs) and a smaller set of
genuine ones, and stored as a compact table: thresholds ascending, the false-match
rate (FMR, share of impostor distances at or below the threshold) and the false
non-match rate (FNMR, share of genuine distances above it) at each.

The chance that a stranger falls within ``t`` of at least one of ``n``
independent templates is ``1 - (1 - FMR(t)) ** n``
(:meth:`FmrCurve.false_match_rate`). Real comparisons are not independent (several
photos of one face; probes that resemble many strangers), so callers pass an
*effective* ``n`` measured by the calibration
(:mod:`facegate.decisions.operating_point`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.errors import FacegateError

#: FMR levels per decade kept in a stored curve
POINTS_PER_DECADE = 12


class CalibrationError(FacegateError):
    """The data cannot support the requested calibration or operating point."""

    exit_code = 2


@dataclass(frozen=True)
class FmrCurve:
    """FMR and FNMR against a distance threshold, with how they were measured."""

    thresholds: np.ndarray  # ascending
    fmr: np.ndarray  # non-decreasing, share of impostor distances <= threshold
    fnmr: np.ndarray  # non-increasing, share of genuine distances > threshold
    n_impostor: int
    n_genuine: int
    #: how the curve was made: data set, people, model, pipeline settings, date
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- building -------------------------------------------------------------
    @classmethod
    def from_scores(
        cls,
        impostor: np.ndarray,
        genuine: np.ndarray,
        provenance: dict[str, Any] | None = None,
        points_per_decade: int = POINTS_PER_DECADE,
    ) -> FmrCurve:
        """Measure the curve from impostor and genuine distances (finite values only).

        The thresholds are impostor distances themselves, chosen so that the FMR
        levels are spread evenly on a log scale from ``1 / n_impostor`` to 1, so the
        FMR at every stored threshold is an exact count.
        """
        imp = np.sort(_finite(impostor))
        gen = np.sort(_finite(genuine))
        if imp.size < 10 or gen.size < 1:
            raise CalibrationError(
                f"a curve needs at least 10 impostor and 1 genuine distances, got {imp.size} and {gen.size}"
            )
        decades = np.log10(imp.size)
        ranks = np.unique(np.round(np.logspace(0, decades, int(np.ceil(decades * points_per_decade)) + 1)))
        thresholds = np.unique(imp[ranks.astype(np.int64) - 1])
        fmr = np.searchsorted(imp, thresholds, side="right") / imp.size
        fnmr = 1.0 - np.searchsorted(gen, thresholds, side="right") / gen.size
        return cls(thresholds, fmr, fnmr, int(imp.size), int(gen.size), dict(provenance or {}))

    # -- reading --------------------------------------------------------------
    @property
    def min_fmr(self) -> float:
        """The smallest FMR the curve measured (one impostor pair)."""
        return float(self.fmr[0])

    def fmr_at(self, distance: float) -> float:
        """The FMR of accepting at ``distance`` (log-linear between stored points).

        Below the closest measured impostor pair the curve knows only a bound, the
        smallest FMR it measured, and returns that.
        """
        return float(self.false_match_rate(distance, 1.0))

    def fnmr_at(self, threshold: float) -> float:
        """The FNMR of one genuine comparison at ``threshold`` (linear between points)."""
        return float(np.interp(threshold, self.thresholds, self.fnmr, left=1.0, right=float(self.fnmr[-1])))

    def false_match_rate(self, threshold: float | np.ndarray, comparisons: float = 1.0) -> np.ndarray:
        """Chance that a stranger falls within ``threshold`` of at least one of
        ``comparisons`` independent templates (1: the plain FMR)."""
        p = self._interp_log(np.asarray(threshold, dtype=np.float64))
        return p if comparisons == 1.0 else -np.expm1(comparisons * np.log1p(-np.minimum(p, 1 - 1e-15)))

    def threshold_for(self, target: float, comparisons: float = 1.0) -> float:
        """The largest threshold at which :meth:`false_match_rate` stays at or below ``target``."""
        if not 0.0 < target < 1.0:
            raise CalibrationError(f"a target rate must be between 0 and 1, got {target}")
        rates = self.false_match_rate(self.thresholds, comparisons)
        if rates[0] > target:
            raise CalibrationError(
                f"the curve cannot reach {target:g} with {comparisons:g} comparison(s): its smallest measured "
                f"rate is {rates[0]:.2g} ({self.provenance.get('calibrated_on', 'this curve')}, "
                f"{self.n_impostor} impostor pairs)"
            )
        i = int(np.flatnonzero(rates <= target)[-1])
        if i == len(rates) - 1:
            return float(self.thresholds[-1])
        lo, hi = float(self.thresholds[i]), float(self.thresholds[i + 1])
        for _ in range(40):  # bisection between the two stored points
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(self.false_match_rate(mid, comparisons)) <= target else (lo, mid)
        return lo

    def _interp_log(self, t: np.ndarray) -> np.ndarray:
        """FMR at ``t``, interpolating log-FMR linearly in the threshold; below the
        first stored point, the first point's FMR (a bound)."""
        return np.exp(np.interp(t, self.thresholds, np.log(self.fmr)))

    # -- storing --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "provenance": self.provenance,
            "n_impostor": self.n_impostor,
            "n_genuine": self.n_genuine,
            "thresholds": [round(float(v), 6) for v in self.thresholds],
            "fmr": [float(f"{v:.6g}") for v in self.fmr],
            "fnmr": [round(float(v), 6) for v in self.fnmr],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FmrCurve:
        return cls(
            thresholds=np.asarray(data["thresholds"], dtype=np.float64),
            fmr=np.asarray(data["fmr"], dtype=np.float64),
            fnmr=np.asarray(data["fnmr"], dtype=np.float64),
            n_impostor=int(data["n_impostor"]),
            n_genuine=int(data["n_genuine"]),
            provenance=dict(data.get("provenance", {})),
        )

    def operating_points(self, targets: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)) -> list[dict[str, float]]:
        """Threshold and FNMR at each target FMR the curve can measure."""
        rows = []
        for target in targets:
            if target < self.min_fmr:
                continue
            t = self.threshold_for(target)
            rows.append({"fmr": target, "threshold": round(t, 4), "fnmr": round(self.fnmr_at(t), 4)})
        return rows


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]
