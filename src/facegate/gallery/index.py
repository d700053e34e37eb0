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
        if len(owners) and not np.all(owners[1:] >= owners[:-1]):
            order = np.argsort(owners, kind="stable")
            owners, matrix = owners[order], matrix[order]
        # the store's order (by template id) is by person unless someone got a template later:
        # a million templates are then not sorted and copied again (0.5 s of an open)
        self.owners = owners
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.names = names
        self.metric = metric
        starts = np.flatnonzero(np.r_[True, self.owners[1:] != self.owners[:-1]]) if len(owners) else np.array([], int)
        self._group(starts)
        self.means = person_means(self.matrix, self._starts) if len(owners) else self.matrix[:0]
        self._distances = metric.prepare(self.matrix) if len(owners) else None
        self._mean_distances = metric.prepare(self.means) if len(owners) and fusion != "min" else None

    def _group(self, starts: np.ndarray) -> None:
        """The people of :attr:`owners` (sorted), whose templates start at rows ``starts``: their ids,
        how many templates each one has, and each one's row by person id."""
        self._starts = starts
        self._people = self.owners[starts]
        self.counts = (np.r_[starts[1:], len(self.owners)] - starts).astype(int)
        self._row_by_person = id_table(self._people, np.arange(len(self._people)))

    def __len__(self) -> int:
        return len(self.owners)

    def extended(self, owners: np.ndarray, matrix: np.ndarray) -> TemplateIndex:
        """This index with new people's templates added, people whose ids all come after
        this index's last (a new enrolment): nothing already here is sorted or averaged again."""
        owners = np.asarray(owners, np.int64)
        if len(self._people) and (not len(owners) or owners.min() <= self._people[-1]):
            raise ValueError("extended() adds new people after the last one")
        order = np.argsort(owners, kind="stable")
        owners, matrix = owners[order], np.asarray(matrix, np.float32)[order]
        local = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        out = TemplateIndex.__new__(TemplateIndex)
        out.fusion, out.names, out.metric = self.fusion, self.names, self.metric
        out.owners = np.concatenate([self.owners, owners])
        out.matrix = np.ascontiguousarray(np.concatenate([self.matrix, matrix]), dtype=np.float32)
        out._group(np.r_[self._starts, len(self.owners) + local].astype(int))
        out.means = (
            np.concatenate([self.means, person_means(matrix, local)])
            if len(self.means)
            else person_means(matrix, local)
        )
        out._distances = self.metric.prepare(out.matrix)
        out._mean_distances = self.metric.prepare(out.means) if self.fusion != "min" else None
        return out

    @property
    def people(self) -> np.ndarray:
        """Person ids, in the order of :meth:`person_distances`."""
        return self._people

    def _row(self, person: int) -> int | None:
        table = self._row_by_person
        row = int(table[person]) if 0 <= person < len(table) else -1
        return row if row >= 0 else None

    def person_distances(self, query: np.ndarray) -> np.ndarray:
        """Every person's fused distance to ``query`` (float32 arithmetic), in :attr:`people` order."""
        if self._distances is None:
            return np.zeros(0)
        query = np.asarray(query, np.float32)
        closest = np.minimum.reduceat(self._distances(query), self._starts) if self.fusion != "mean" else None
        to_mean = self._mean_distances(query) if self._mean_distances is not None else None
        return fuse(self.fusion, closest, to_mean)

    def rows_of(self, people: np.ndarray) -> np.ndarray:
        """The rows (in :attr:`people` order) of the given person ids that are enrolled, in the given order."""
        return known(self._row_by_person, np.asarray(people, np.int64)).astype(int)

    def distances_of(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The exact fused distances of the people at ``rows`` only, each difference taken
        (:meth:`person_distances` computes every person's from precomputed norms): a search's
        candidates are ranked on these and report them (float32, as the templates are; within
        1e-7 of float64 arithmetic)."""
        rows = np.asarray(rows, int)
        if self._distances is None or not len(rows):
            return np.zeros(0)
        closest = to_mean = None
        if self.fusion != "mean":  # every template of those people, then the closest of each one's
            sizes = np.take(self.counts, rows)
            offsets = np.cumsum(sizes) - sizes
            at = np.repeat(np.take(self._starts, rows) - offsets, sizes) + np.arange(int(offsets[-1] + sizes[-1]))
            closest = np.minimum.reduceat(self._distances.at(query, at), offsets)
        if self._mean_distances is not None:
            to_mean = self._mean_distances.at(query, rows)
        return fuse(self.fusion, closest, to_mean)

    def nearest_of(
        self, k: int, rows: np.ndarray, scores: np.ndarray, distances: np.ndarray
    ) -> list[tuple[int, str, float, float]]:
        """The ``k`` best of the people at ``rows`` as (person id, name, exact fused distance, score),
        best first: ranked by their ``scores``, with their exact fused ``distances`` (:meth:`distances_of`)."""
        if self._distances is None or k <= 0 or not len(rows):
            return []
        scores = np.asarray(scores)
        top = np.argsort(scores, kind="stable")[:k]
        people = self._people[np.asarray(rows, int)[top]].tolist()
        return [
            (p, self.names[p], d, r)
            for p, d, r in zip(people, np.asarray(distances)[top].tolist(), scores[top].tolist(), strict=True)
        ]

    def exact_distance(self, query: np.ndarray, person: int) -> float:
        """Fused distance from ``query`` to the templates of ``person`` (:meth:`distances_of`)."""
        return float(self.distances_of(query, np.array([self.row_of(person)]))[0])

    def row_of(self, person: int) -> int:
        """The position of ``person`` in :attr:`people` order."""
        i = self._row(person)
        if i is None:
            raise KeyError(person)
        return i


def id_table(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` addressed by ``ids`` (the store's ids: dense, from 1), -1 for an id not given:
    one read per lookup, where a binary search over a million ids missed the cache at every step."""
    table = np.full(int(ids.max()) + 1 if len(ids) else 0, -1, np.int64)
    table[ids] = values
    return table


def known(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The values an :func:`id_table` holds for ``ids``, in their order, ids it does not hold left out."""
    values = table[ids[(ids >= 0) & (ids < len(table))]]
    return values[values >= 0]
