"""The in-memory search index over every template of a gallery.

Templates are kept grouped by person, so "each person's closest template" is one
``minimum.reduceat`` over the distances of one matrix-vector product; what the
metric can precompute (norms, unit rows) is computed once per rebuild.
"""

from __future__ import annotations

import numpy as np

from facegate.distances import Metric


class TemplateIndex:
    def __init__(self, owners: np.ndarray, matrix: np.ndarray, names: dict[int, str], metric: Metric) -> None:
        order = np.argsort(owners, kind="stable")
        self.owners = owners[order]
        self.matrix = np.ascontiguousarray(matrix[order], dtype=np.float32)
        self.names = names
        self.metric = metric
        starts = np.flatnonzero(np.r_[True, self.owners[1:] != self.owners[:-1]]) if len(owners) else np.array([], int)
        self._starts = starts
        self._people = self.owners[starts]
        self._ends = np.r_[starts[1:], len(self.owners)].astype(int)
        self._distances = metric.prepare(self.matrix) if len(owners) else None

    def __len__(self) -> int:
        return len(self.owners)

    def templates_of(self, person: int) -> np.ndarray:
        i = int(np.searchsorted(self._people, person))
        if i >= len(self._people) or self._people[i] != person:
            return self.matrix[:0]
        return self.matrix[self._starts[i] : self._ends[i]]

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest people as (name, distance), nearest first.

        The ranking uses float32 arithmetic; the reported distances are recomputed
        exactly (float64) from the chosen people's own templates.
        """
        if self._distances is None or k <= 0:
            return []
        query = np.asarray(query, np.float32)
        per_person = np.minimum.reduceat(self._distances(query), self._starts)
        k = min(k, len(per_person))
        top = np.argpartition(per_person, k - 1)[:k]
        exact = [(self.exact_distance(query, int(self._people[i])), int(self._people[i])) for i in top]
        return [(self.names[p], d) for d, p in sorted(exact)]

    def exact_distance(self, query: np.ndarray, person: int) -> float:
        """Distance (float64) from ``query`` to the closest template of ``person``."""
        return float(self.metric(np.asarray(query, np.float64), self.templates_of(person).astype(np.float64)).min())
