"""Distance metrics between embeddings, vectorised, in a registry.

Each metric gives distances along the last axis of two arrays that broadcast
(``metric(a, b)``), and the full (n, m) matrix between two sets of rows
(``metric.pairwise(A, B)``) with one matrix product, so a query against 100k
templates costs one BLAS call; ``pairwise`` also takes stacks, ``(..., n, D)`` against
``(..., m, D)`` (one-shot episodes score many small sets at once).

Every score is a distance (lower is closer) unless the metric says
:attr:`Metric.higher_is_closer`: a learned similarity such as a Siamese head's
probability of "same" (:class:`facegate.learn.nets.omniglot.HeadMetric`) is a metric
too, and :meth:`Metric.as_distances` and :meth:`Metric.accepts` let code treat both alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from facegate.registry import Registry


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (zero rows stay zero)."""
    x = _floats(x)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _floats(x: np.ndarray) -> np.ndarray:
    """``x`` as a float array, keeping float32 (a 100k-row gallery is not copied to float64)."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


class Metric(ABC):
    name: ClassVar[str]
    #: the scores are similarities (higher is closer), not distances
    higher_is_closer: ClassVar[bool] = False

    def as_distances(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` ordered as distances are: lower is closer (a similarity is negated)."""
        scores = np.asarray(scores)
        return -scores if self.higher_is_closer else scores

    def accepts(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """Whether each score is as close as ``threshold`` or closer ("same")."""
        scores = np.asarray(scores)
        return scores >= threshold if self.higher_is_closer else scores <= threshold

    @abstractmethod
    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances along the last axis of ``a`` and ``b`` (broadcasting)."""

    @abstractmethod
    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The (n, m) distances between the rows of ``a`` (n, D) and ``b`` (m, D); stacks
        ``(..., n, D)`` and ``(..., m, D)`` give ``(..., n, m)``."""

    def index_slope(self, distance: float) -> float:
        """How fast the squared euclidean distance between the rows an approximate index holds
        (unit length where the metric compares directions) grows with this metric's distance,
        at ``distance``."""
        raise NotImplementedError(f"no approximate index serves the metric {self.name!r}")

    def prepare(self, matrix: np.ndarray) -> Prepared:
        """The rows of ``matrix`` made ready for this metric's distances to many queries
        (:class:`Prepared`: to every row, or to some rows).

        Metrics precompute what does not depend on the query (row norms, unit rows),
        so a search over a large gallery is one matrix-vector product.
        """
        return Prepared(
            lambda query: _one_or_stack(query, lambda rows: self.pairwise(rows, matrix)),
            lambda query, rows: self(query, np.take(matrix, rows, axis=0)),
        )


class Prepared:
    """A matrix's rows made ready for one metric (:meth:`Metric.prepare`).

    ``prepared(query)``: a query vector's distances to every row (``(m,)``), or a stack of
    queries' ``(n, D)`` (``(n, m)``), from what was precomputed. ``prepared.at(query, rows)``:
    the query's distances to the rows at the given positions only, pair by pair (euclidean:
    each difference taken, not from the norms), in the rows' precision: a search's few hundred
    candidates are ranked and reported on these.
    """

    def __init__(
        self,
        every: Callable[[np.ndarray], np.ndarray],
        some: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        self._every, self._some = every, some

    def __call__(self, query: np.ndarray) -> np.ndarray:
        return self._every(query)

    def at(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self._some(np.asarray(query), np.asarray(rows, np.intp))


METRICS: Registry[Metric] = Registry("metric")


def _squared_euclidean_matrix(a: np.ndarray, b: np.ndarray, b_squared: np.ndarray | None = None) -> np.ndarray:
    """Squared distances between the rows of ``a`` and ``b`` (``b_squared``: ``b``'s squared norms, when known)."""
    b_squared = (b * b).sum(-1) if b_squared is None else b_squared
    squared = (a * a).sum(-1)[..., :, None] + b_squared[..., None, :] - 2.0 * (a @ _t(b))
    return np.maximum(squared, 0.0)


def _squared_euclidean_at(matrix: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Squared distances from ``query`` to ``matrix[rows]``, each difference taken, in the matrix's
    precision: the rows are gathered once and the query subtracted in place. At 1M templates, the
    distances of a search's 96 candidate people (their 200 templates and 96 means) took 0.09 ms
    this way, after real searches, against 0.14 ms with the float32 rows promoted to a float64
    query, and differed from those by less than 6e-8."""
    taken = np.take(matrix, rows, axis=0)
    np.subtract(taken, np.asarray(query, matrix.dtype), out=taken)
    return np.einsum("ij,ij->i", taken, taken)


def _t(x: np.ndarray) -> np.ndarray:
    """The last two axes swapped (rows to columns, for a stack of matrices too)."""
    return np.swapaxes(x, -1, -2)


@METRICS.register("euclidean")
class Euclidean(Metric):
    """Plain Euclidean distance."""

    name = "euclidean"

    @staticmethod
    def _vectors(x: np.ndarray) -> np.ndarray:
        """What is compared: the vectors as given (as floats)."""
        return _floats(x)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        difference = self._vectors(a) - self._vectors(b)
        # the squares summed by einsum: np.linalg.norm took a quarter longer for a few hundred rows
        return np.sqrt(np.einsum("...i,...i->...", difference, difference))

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(_squared_euclidean_matrix(self._vectors(_rows(a)), self._vectors(_rows(b))))

    def index_slope(self, distance: float) -> float:
        return 2 * float(distance)  # squared distance

    def prepare(self, matrix: np.ndarray) -> Prepared:
        compared = self._vectors(_rows(matrix))
        squared_norms = np.einsum("ij,ij->i", compared, compared)

        def every(query: np.ndarray) -> np.ndarray:
            q = np.asarray(self._vectors(query), compared.dtype)
            if q.ndim == 1:  # one query: a matrix-vector product
                return np.sqrt(np.maximum(squared_norms + q @ q - 2.0 * (compared @ q), 0.0))
            return np.sqrt(_squared_euclidean_matrix(q, compared, squared_norms))

        return Prepared(every, lambda query, rows: np.sqrt(_squared_euclidean_at(compared, rows, self._vectors(query))))


@METRICS.register("euclidean_l2")
class EuclideanL2(Euclidean):
    """Euclidean distance after scaling both vectors to unit length (range [0, 2])."""

    name = "euclidean_l2"

    @staticmethod
    def _vectors(x: np.ndarray) -> np.ndarray:
        """What is compared: the vectors scaled to unit length."""
        return l2_normalise(x)


@METRICS.register("cosine")
class Cosine(Metric):
    """Cosine distance, 1 - cos(angle) (range [0, 2])."""

    name = "cosine"

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - np.sum(l2_normalise(a) * l2_normalise(b), axis=-1), 0.0, 2.0)

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - l2_normalise(_rows(a)) @ _t(l2_normalise(_rows(b))), 0.0, 2.0)

    def index_slope(self, distance: float) -> float:
        return 2.0  # between unit rows, |a - b|^2 = 2 (1 - cos)

    def prepare(self, matrix: np.ndarray) -> Prepared:
        unit = l2_normalise(_rows(matrix))

        def every(query: np.ndarray) -> np.ndarray:
            q = l2_normalise(query).astype(unit.dtype)
            return np.clip(1.0 - (unit @ q if q.ndim == 1 else q @ unit.T), 0.0, 2.0)

        def some(query: np.ndarray, rows: np.ndarray) -> np.ndarray:
            q = l2_normalise(query).astype(unit.dtype)
            return np.clip(1.0 - np.take(unit, rows, axis=0) @ q, 0.0, 2.0)

        return Prepared(every, some)


def _one_or_stack(query: np.ndarray, distances: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``distances`` (of a stack of rows) for one query vector (its row) or a stack."""
    query = np.asarray(query)
    return distances(query[None, :])[0] if query.ndim == 1 else distances(query)


def _rows(x: np.ndarray) -> np.ndarray:
    return np.atleast_2d(_floats(x))


def get_metric(name: str) -> Metric:
    return METRICS.create(name)


def distance(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> float:
    """Distance between two embeddings under the named metric."""
    return float(get_metric(metric)(a, b))


def pairwise(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """The (n, m) distance matrix between rows of ``a`` and ``b`` under the named metric."""
    return get_metric(metric).pairwise(a, b)
