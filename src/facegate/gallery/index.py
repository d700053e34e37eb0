"""The in-memory search index over every template of a gallery.

Templates are kept grouped by person. A person's distance to a probe fuses their
templates (:data:`FUSIONS`): the closest template (``min``, one
``minimum.reduceat`` over the distances of one matrix-vector product), the
person's mean embedding (``mean``), or the average of the two (``both``). What the
metric can precompute (norms, unit rows) is computed once per rebuild.
"""

from __future__ import annotations

import numpy as np

from facegate.decisions.fusion import Fusion, check_fusion, fuse, person_means
from facegate.distances import Metric


class TemplateIndex:
    def __init__(
        self,
        owners: np.ndarray,
        matrix: np.ndarray,
        names: dict[int, str],
        metric: Metric,
        fusion: Fusion = "min",
    ) -> None:
        self.fusion = check_fusion(fusion)
        order = np.argsort(owners, kind="stable")
        self.owners = owners[order]
        self.matrix = np.ascontiguousarray(matrix[order], dtype=np.float32)
        self.names = names
        self.metric = metric
        starts = np.flatnonzero(np.r_[True, self.owners[1:] != self.owners[:-1]]) if len(owners) else np.array([], int)
        self._starts = starts
        self._people = self.owners[starts]
        self._ends = np.r_[starts[1:], len(self.owners)].astype(int)
        self.counts = (self._ends - self._starts).astype(int)
        self.means = person_means(self.matrix, self._starts) if len(owners) else self.matrix[:0]
        self._distances = metric.prepare(self.matrix) if len(owners) else None
        self._mean_distances = metric.prepare(self.means) if len(owners) and fusion != "min" else None

    def __len__(self) -> int:
        return len(self.owners)

    @property
    def people(self) -> np.ndarray:
        """Person ids, in the order of :meth:`person_distances`."""
        return self._people

    def _row(self, person: int) -> int | None:
        i = int(np.searchsorted(self._people, person))
        return i if i < len(self._people) and self._people[i] == person else None

    def templates_of(self, person: int) -> np.ndarray:
        i = self._row(person)
        return self.matrix[:0] if i is None else self.matrix[self._starts[i] : self._ends[i]]

    def person_distances(self, query: np.ndarray) -> np.ndarray:
        """Every person's fused distance to ``query`` (float32 arithmetic), in :attr:`people` order."""
        if self._distances is None:
            return np.zeros(0)
        query = np.asarray(query, np.float32)
        closest = np.minimum.reduceat(self._distances(query), self._starts) if self.fusion != "mean" else None
        to_mean = self._mean_distances(query) if self._mean_distances is not None else None
        return fuse(self.fusion, closest, to_mean)

    def nearest(self, query: np.ndarray, k: int, scores: np.ndarray | None = None) -> list[tuple[str, float, float]]:
        """The ``k`` nearest people as (name, exact fused distance, ranking value), nearest first.

        People are ranked by ``scores`` (one per person, in :attr:`people` order:
        normalised scores, say) when given, else by their fused distance (float32).
        The reported distances are recomputed exactly (float64).
        """
        if self._distances is None or k <= 0:
            return []
        ranking = self.person_distances(query) if scores is None else np.asarray(scores)
        k = min(k, len(ranking))
        top = np.argpartition(ranking, k - 1)[:k]
        top = top[np.argsort(ranking[top], kind="stable")]
        return [
            (self.names[int(self._people[i])], self.exact_distance(query, int(self._people[i])), float(ranking[i]))
            for i in top
        ]

    def exact_distance(self, query: np.ndarray, person: int) -> float:
        """Fused distance (float64) from ``query`` to the templates of ``person``."""
        i = self._row(person)
        templates = self.templates_of(person).astype(np.float64)
        q = np.asarray(query, np.float64)
        closest = self.metric(q, templates).min() if self.fusion != "mean" else None
        to_mean = self.metric(q, self.means[i].astype(np.float64)) if self.fusion != "min" and i is not None else None
        return float(fuse(self.fusion, closest, to_mean))

    def row_of(self, person: int) -> int:
        """The position of ``person`` in :attr:`people` order."""
        i = self._row(person)
        if i is None:
            raise KeyError(person)
        return i
