"""What the graph indexes: a template's coordinates on the gallery's principal axes.

A face model's embeddings do not fill their space. The default model's 128 numbers
vary along about 78 directions: on LFW the other 50 hold 0.0004% of the variance, and
on 80 principal axes distances between LFW photos change by at most 1.3e-6 (float32
rounding is 1e-7 of them). The in-process graph (:mod:`~facegate.gallery.ann`) indexes
each template by its coordinates on the fewest principal axes holding all but 0.01% of
the variance (:data:`VARIANCE_KEPT`), rounded up to a multiple of :data:`MULTIPLE`: 80
numbers instead of 128 for the default model, so a search reads less memory, the graph
is smaller and it builds faster, and it finds what the full templates' graph finds.

Only the candidate list depends on it. The gallery recomputes every candidate's
distance on the full templates, so distances, scores and thresholds are the exact ones
whatever the projection; a projection that dropped real variance could only make the
graph miss a person, which recall measures (``bench/gallery_scale.py``). Keeping less
was tried: on 64 axes (97% of the variance) a search at 1M templates was 1.2-1.3 times
faster but found the exact nearest template less often (0.983 against 0.993 of the
tuning probes at a list of 256), and the recall target decided.

The axes are estimated once, when the graph is built from the store (on a sample of at
most :data:`SAMPLE` templates), and kept in the graph's files; a graph built from fewer
than :data:`MIN_TEMPLATES` templates indexes full templates (too few to estimate the axes
well, and too small for it to matter) until it is built again. With ``index="auto"`` a
graph is first built at 20,000 templates, so it always has its axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: the share of the templates' variance the graph's coordinates keep: all of it that is not noise
VARIANCE_KEPT = 0.9999
#: the number of axes is rounded up to a multiple of this (the distance kernels' SIMD width)
MULTIPLE = 16
#: fewer templates than this: no projection (the graph indexes the full templates)
MIN_TEMPLATES = 10_000
#: at most this many templates (a seeded draw) estimate the axes
SAMPLE = 200_000


@dataclass(frozen=True)
class Projection:
    """Coordinates on ``axes`` (orthonormal columns, ``(dim, kept)``) about ``centre``."""

    centre: np.ndarray  # float32, (dim,)
    axes: np.ndarray  # float32, (dim, kept)

    @property
    def dim(self) -> int:
        """How many coordinates a projected template has."""
        return int(self.axes.shape[1])

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors, np.float32).reshape(-1, self.axes.shape[0])
        return np.ascontiguousarray((v - self.centre) @ self.axes, np.float32)

    @classmethod
    def fit(cls, matrix: np.ndarray, variance: float = VARIANCE_KEPT, seed: int = 0) -> Projection | None:
        """The principal axes of ``matrix``'s rows holding ``variance`` of their variance, or None where
        there are fewer than :data:`MIN_TEMPLATES` rows or the axes would be all of them."""
        n, dim = matrix.shape
        if n < MIN_TEMPLATES:
            return None
        sample = matrix if n <= SAMPLE else matrix[np.random.default_rng(seed).choice(n, SAMPLE, replace=False)]
        sample = np.asarray(sample, np.float64)
        centre = sample.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov(sample - centre, rowvar=False))
        values, vectors = np.clip(values[::-1], 0, None), vectors[:, ::-1]
        share = np.cumsum(values) / max(values.sum(), np.finfo(float).tiny)
        kept = int(np.searchsorted(share, variance - 1e-12)) + 1
        kept = -(-kept // MULTIPLE) * MULTIPLE
        if kept >= dim:
            return None
        return cls(centre.astype(np.float32), np.ascontiguousarray(vectors[:, :kept], np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        """What the graph's files keep of it (:meth:`from_arrays` reads it back)."""
        return {"projection_centre": self.centre, "projection_axes": self.axes}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Projection | None:
        if "projection_axes" not in arrays:
            return None
        centre = np.asarray(arrays["projection_centre"], np.float32)
        axes = np.ascontiguousarray(arrays["projection_axes"], np.float32)
        if axes.ndim != 2 or centre.shape != (axes.shape[0],):
            raise ValueError("the projection's arrays do not fit together")
        return cls(centre, axes)


__all__ = ["MIN_TEMPLATES", "VARIANCE_KEPT", "Projection"]
