"""Approximate nearest-neighbour search for large galleries.

Exact search scores every template of the gallery: 4.6 ms per probe at 100k
templates, about 50 ms at 1M. Above :data:`ANN_MIN_TEMPLATES` templates a gallery
asks an approximate index for the :func:`candidate_count` nearest *templates*, groups
them to people, and scores only those people, exactly: each candidate's fused distance
is recomputed over all their templates, so distances, scores, thresholds and the
open-set decision keep their meaning; only a person the index missed can be missed.
The index holds a template's coordinates on the gallery's principal axes
(:mod:`~facegate.gallery.projection`: 80 numbers instead of 128 for the default model),
estimated when the index is built from the store and kept with it.

With the default cohort-normalised scores the nearest templates are not always the best
scoring ones: a person whose cohort distances are far or narrow scores better at the same
distance. The gallery then gives the index a :class:`Penalty`: each template holds the square
root of its owner's penalty as one more coordinate, which a probe searches at zero, so the
index orders templates by squared distance plus penalty, which follows the scores' order
(:meth:`~facegate.decisions.normalisation.AsNorm.index_penalty`). At 1M templates, exact
search's best-scoring person owned one of the 64 nearest templates for 0.951 of the tuning
probes, and one of the first 64 in the penalised order for all of them
(``bench/normalised_candidates.py``). A call that asks for plain distances (a raw threshold)
on such a gallery scores every person instead.

Two indexes (:data:`INDEXES`): faiss's inverted lists with 4-bit fast-scan codes
(:mod:`~facegate.gallery.ivf`, ``ivf``, the default :data:`INDEX`: why there) and
hnswlib's HNSW graph (:class:`HnswGraph`, ``hnsw``, the earlier default). Search
strategies (:data:`SEARCHES`): ``exact`` (always every template), ``ann`` (always the
default index), ``auto`` (the index from :data:`ANN_MIN_TEMPLATES` templates on; the
default), or an index by name. Both libraries are the ``ann`` extra; without the
index's library ``auto`` searches exactly and an approximate search refuses. A store that
can search itself (pgvector) provides a :class:`Searcher` as its ``searcher`` attribute,
which the gallery asks for ``ann`` (and for ``auto`` where the in-process index cannot serve).

The index is keyed by template id and persists beside the gallery file
(``<gallery>.ann.json``, a header, and the data files it names); a server's gallery
(PostgreSQL) searched in process keeps it in this machine's cache instead
(:func:`server_index_path`). The store stays
the truth: the header records the gallery's identity (its ``gallery_uuid``), the
``people_version`` the index was saved at, and checksums of the data files. On
opening, an index that is missing, damaged, of another gallery or of another kind is
rebuilt from the store; one that is stale (the gallery changed since it was saved:
another process wrote, or this one was killed before it saved) is brought up to date
by comparing it with the store, template by template (ids and vectors), adding and
removing what differs. Enrolment and removal add and remove templates in the
index (no rebuild); it is saved when built, on :meth:`AnnSearch.save`
(``Gallery.close``), and after :data:`SAVE_EVERY` changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from facegate.gallery.hugepages import huge_pages
from facegate.gallery.index import id_table, known
from facegate.gallery.ivf import IvfIndex
from facegate.gallery.projection import Projection
from facegate.paths import cache_dir

#: ``auto`` searches the graph from this many templates on: where exact search passes
#: about 1 ms per probe on a 2-core machine (bench/gallery_scale.py)
ANN_MIN_TEMPLATES = 20_000
#: metrics the graph serves, and whether it indexes unit-length rows for them (the
#: graph's space is always squared euclidean: on unit rows its order is cosine's too)
ANN_METRICS: dict[str, bool] = {"euclidean": False, "euclidean_l2": True, "cosine": True}
#: graph parameters: links per node, and the candidate list while building. A dense graph:
#: at 100k templates of the default model, 32 links and a build list of 200 find the nearest
#: template 98 times in 100 with a search list of 64, where 16 and 100 found it 91 times
#: (bench/gallery_scale.py's sweep); building takes about twice as long
LINKS, EF_CONSTRUCTION = 32, 200
#: the candidate list while searching, by graph size (from that many templates on): the
#: shortest list that finds the nearest template 99 times in 100 on bench/gallery_scale.py's
#: tuning probes (10k: 64 finds it every time; 100k: 128, 99.8 in 100; 1M: 256, 99.0 in 100;
#: the default model's embeddings are hard for a graph: many neighbours are nearly equidistant)
EF_SEARCH: dict[int, int] = {0: 64, 50_000: 128, 300_000: 256}


#: a graph is built from the store's templates in a random order drawn with this seed, not in
#: the order they were enrolled: people enrolled together (a first import, one site) otherwise
#: go in as a block, and at 1M templates the graph then found the nearest template 87 times in
#: 100 with a list of 64, where the shuffled build found it 94 times (99.25 at 256)
BUILD_ORDER_SEED = 0


def ef_search(templates: int) -> int:
    """The search list length for a graph of ``templates`` templates (:data:`EF_SEARCH`)."""
    return max(ef for size, ef in EF_SEARCH.items() if templates >= size)


#: the graph is saved after this many changes since it was last saved (and on close)
SAVE_EVERY = 10_000
#: format of the files beside the gallery
FORMAT = 1
#: the files beside a gallery, by their header's key, as messages name them
PARTS = {"graph": "data", "ids": "ids"}


def available(kind: str | None = None) -> bool:
    """Whether the library of the index ``kind`` (default :data:`INDEX`) is installed
    (``pip install 'facegate[ann]'``; ``make install`` does)."""
    import importlib.util

    return importlib.util.find_spec(INDEXES[kind or INDEX].module) is not None


def candidate_count(top_k: int) -> int:
    """How many nearest templates the graph is asked for when ``top_k`` people are wanted."""
    return max(10 * int(top_k), 64)


def resolve_search(mode: str, templates: int) -> str:
    """``exact`` or ``ann``: what ``mode`` means for a gallery of ``templates`` templates."""
    if mode not in SEARCHES:
        raise ValueError(f"unknown search {mode!r}; use one of {', '.join(SEARCHES)}")
    if mode == "auto":
        return "ann" if templates >= ANN_MIN_TEMPLATES else "exact"
    return "exact" if mode == "exact" else "ann"


def index_kind(mode: str) -> str:
    """The approximate index a search strategy uses (one of :data:`INDEXES`)."""
    return mode if mode in INDEXES else INDEX


@runtime_checkable
class Searcher(Protocol):
    """What a gallery asks for candidates: anything that finds the people nearest a probe.

    ``candidates(query, k)`` returns person ids (the store's), nearest first, at
    least the ``k`` nearest people where the gallery has that many (more is fine:
    the gallery scores every candidate exactly and ranks them itself). A store that
    can search itself (pgvector) exposes one as ``store.searcher``; otherwise the
    gallery uses its in-process :class:`AnnSearch`.
    """

    def candidates(self, query: np.ndarray, k: int) -> Sequence[int] | np.ndarray: ...


#: the coordinates a penalty takes: its square root and a zero (the ivf codes take coordinates in pairs)
PENALTY_COORDINATES = 2


class Penalty(Protocol):
    """What an index adds to each template's squared distance so that its order follows scores
    other than distance (cohort-normalised ones: :meth:`~facegate.decisions.scoring.Scoring.index_penalty`):
    called with template owners (person ids), it gives each one's penalty (>= 0, the same for
    one owner's templates). The index holds its square root as one more coordinate, which a
    probe searches at zero. ``name`` says which scores (an index built for other scores is rebuilt)."""

    name: str

    def __call__(self, owners: np.ndarray) -> np.ndarray: ...


class AnnIndexError(Exception):
    """The files beside a gallery do not hold a usable graph (the caller rebuilds it)."""


def header_path(gallery_path: str | Path) -> Path:
    return Path(f"{gallery_path}.ann.json")


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


class HnswGraph:
    """An hnswlib graph of template vectors, labelled by template id (``index="hnsw"``).

    Its memory is backed by huge pages where the kernel offers them (:mod:`~facegate.gallery.hugepages`;
    ``memory`` says how many bytes were advised): at 1M templates the search is about 1.2 times faster.
    """

    module, suffix = "hnswlib", "hnsw"

    def __init__(self, dim: int, capacity: int = 1024, tail: int = 0) -> None:
        """``tail``: how many last coordinates are a penalty's (the graph compares whole vectors alike)."""
        import hnswlib

        self.dim = dim
        self._graph = hnswlib.Index(space="l2", dim=dim)
        with huge_pages() as self.memory:  # the graph's block, written as templates come
            self._graph.init_index(
                max_elements=max(capacity, 16), M=LINKS, ef_construction=EF_CONSTRUCTION, allow_replace_deleted=True
            )
        self._graph.set_num_threads(1)
        #: labels marked deleted in the graph (their slots are reused by later additions)
        self._deleted: set[int] = set()

    @staticmethod
    def library() -> str:
        from importlib.metadata import version

        return f"hnswlib {version('hnswlib')}"

    @staticmethod
    def params() -> dict:
        """The graph parameters a saved graph must have been built with to be loaded."""
        return {"links": LINKS, "ef_construction": EF_CONSTRUCTION}

    @property
    def deleted(self) -> np.ndarray:
        """Labels marked deleted in the graph (their slots are reused by later additions)."""
        return np.array(sorted(self._deleted), np.int64)

    @property
    def live(self) -> int:
        return self._graph.get_current_count() - len(self._deleted)

    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int = 1) -> None:
        """Add templates whose ids the graph does not hold live (an id removed earlier may come back)."""
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        back = np.array([t in self._deleted for t in ids.tolist()], bool)
        for i in np.flatnonzero(back):  # a reused id: bring its own slot back (one slot per label)
            self._graph.unmark_deleted(int(ids[i]))
            self._deleted.discard(int(ids[i]))
        if back.any():
            self.update(ids[back], vectors[back])
        ids, vectors = ids[~back], vectors[~back]
        if not len(ids):
            return
        reuse = min(len(self._deleted), len(ids))
        need = self._graph.get_current_count() + len(ids) - reuse
        if need > self._graph.get_max_elements():
            with huge_pages(collapse=True) as grown:  # a bigger block, the old one copied into it
                self._graph.resize_index(max(need, 2 * self._graph.get_max_elements()))
            self.memory.advised += grown.advised
            self.memory.collapsed += grown.collapsed
        self._graph.add_items(vectors, ids, num_threads=threads, replace_deleted=bool(reuse))
        if reuse:  # the reused slots' old labels left the graph
            self._deleted &= {int(x) for x in self._graph.get_ids_list()}

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """New vectors for ids the graph holds live."""
        if len(ids):
            self._graph.add_items(np.ascontiguousarray(vectors, np.float32), np.asarray(ids, np.int64), num_threads=1)

    def remove(self, ids: np.ndarray) -> None:
        for t in np.asarray(ids, np.int64).tolist():
            self._graph.mark_deleted(t)
            self._deleted.add(t)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._graph.get_items(np.asarray(ids, np.int64)), np.float32)

    def search(self, query: np.ndarray, k: int, effort: int | None = None) -> np.ndarray:
        """The template ids of (about) the ``k`` nearest templates, nearest first (``effort``: the
        search list, else :func:`ef_search`'s for the graph's size)."""
        k = min(k, self.live)
        q = np.asarray(query, np.float32).reshape(1, -1)
        while k > 0:
            self._graph.set_ef(max(effort if effort is not None else ef_search(self.live), k))
            try:
                labels, _ = self._graph.knn_query(q, k=k, num_threads=1)
            except RuntimeError:  # a small graph with many deletions can find fewer than k
                k //= 2
                continue
            return labels[0].astype(np.int64)
        return np.zeros(0, np.int64)

    def save(self, path: Path) -> None:
        self._graph.save_index(str(path))

    @classmethod
    def load(cls, path: Path, dim: int, live: int, deleted: np.ndarray) -> HnswGraph:
        import hnswlib

        graph = cls.__new__(cls)
        graph.dim = dim
        graph._graph = hnswlib.Index(space="l2", dim=dim)
        try:
            with huge_pages(collapse=True) as graph.memory:  # the block the file was read into
                graph._graph.load_index(str(path), allow_replace_deleted=True)
        except Exception as exc:
            raise AnnIndexError(f"the graph file cannot be read ({exc})") from exc
        graph._graph.set_num_threads(1)
        graph._deleted = {int(x) for x in deleted}
        if graph.live != live or graph._graph.dim != dim:
            raise AnnIndexError("the graph holds other templates than its header says")
        return graph


#: the approximate indexes a gallery can keep (``Gallery(index=...)`` names one; ``ann`` is :data:`INDEX`)
INDEXES: dict[str, type] = {"ivf": IvfIndex, "hnsw": HnswGraph}
#: the index ``ann`` and ``auto`` use: faiss's inverted lists (why: :mod:`.ivf`)
INDEX = "ivf"
#: search strategies a gallery accepts: every template, the default index, either by size, or a named index
SEARCHES: tuple[str, ...] = ("exact", "ann", "auto", *INDEXES)


class AnnSearch:
    """The in-process :class:`Searcher` of a gallery: the index (``kind``, one of :data:`INDEXES`),
    the owner of every template, and the files that keep it between sessions.

    ``origin`` says how this session got it: ``built`` (from the store: ``reason``
    says why), ``loaded`` (from the files, as saved) or ``updated`` (from the files,
    then brought up to date with the store).
    """

    #: graphs built from a store in this process (what tests count)
    builds = 0

    def __init__(
        self,
        dim: int,
        normalise: bool,
        path: str | None,
        identity: str,
        kind: str = INDEX,
        penalty: Penalty | None = None,
    ) -> None:
        if kind not in INDEXES:
            raise ValueError(f"unknown index {kind!r}; use one of {', '.join(INDEXES)}")
        self.kind = kind
        self.dim = dim
        self.normalise = normalise
        #: each template's penalty, by its owner (see :class:`Penalty`), or None: plain distances
        self.penalty = penalty
        self.path = None if path in (None, ":memory:") else str(path)
        self.identity = identity
        #: the graph indexes templates on these axes (None: the full templates); see :mod:`.projection`
        self.projection: Projection | None = None
        self.graph = INDEXES[kind](dim)
        self._hold(np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.people_version: int | None = None
        #: the header of the files as last loaded or saved; whether the graph changed since
        self._header: dict | None = None
        self._dirty = True
        #: arrays kept with the graph for its user (the gallery's cohort statistics): as loaded,
        #: and a function giving the current ones when the graph is saved
        self.kept: dict[str, np.ndarray] = {}
        self.keep: Callable[[], dict[str, np.ndarray]] | None = None
        #: owners whose templates changed when the graph was last brought up to date
        self.touched = np.zeros(0, np.int64)
        self.origin = "built"
        self.reason = ""
        self.unsaved = 0

    # -- vectors -------------------------------------------------------------------
    def _normalised(self, vectors: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        if self.normalise:
            v = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return v

    def _prepare(self, vectors: np.ndarray, owners: np.ndarray | None = None) -> np.ndarray:
        """Templates as the graph holds them (unit length where the metric wants it, projected,
        and their owners' penalties), or with no ``owners`` a probe as it searches."""
        return self._penalised(self._projected(self._normalised(vectors)), owners)

    def _projected(self, vectors: np.ndarray) -> np.ndarray:
        return vectors if self.projection is None else self.projection(vectors)

    def _penalised(self, projected: np.ndarray, owners: np.ndarray | None) -> np.ndarray:
        """``projected`` with the penalty's coordinates (:data:`PENALTY_COORDINATES`): the square
        root of the owners' penalties, then zeros; all zeros for a probe."""
        if self.penalty is None:
            return projected
        extra = np.zeros((len(projected), PENALTY_COORDINATES), np.float32)
        if owners is not None and len(owners):
            extra[:, 0] = np.sqrt(np.maximum(self.penalty(np.asarray(owners, np.int64)), 0.0))
        return np.ascontiguousarray(np.hstack([projected, extra]), np.float32)

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | None,
        identity: str,
        people_version: int,
        ids: np.ndarray,
        owners: np.ndarray,
        matrix: np.ndarray,
        normalise: bool,
        kind: str = INDEX,
        penalty: Penalty | None = None,
    ) -> AnnSearch:
        """The index of the gallery at ``path`` whose store holds (``ids``, ``owners``,
        ``matrix``) at ``people_version``: from its files when they are usable, else built."""
        search = cls(matrix.shape[1], normalise, path, identity, kind, penalty)
        if search.path is not None:
            try:
                search._load(people_version)
            except AnnIndexError as exc:
                search.reason = str(exc)
            else:
                if search.people_version == people_version and np.array_equal(search.ids, np.sort(ids)):
                    search.origin = "loaded"
                    search._hold(search.ids, owners[np.argsort(ids, kind="stable")].astype(np.int64))
                    return search
                search.sync(ids, owners, matrix, people_version)
                search.origin = "updated"
                search.save()  # the new graph, or only the header's people_version when nothing else changed
                return search
        search.build(ids, owners, matrix, people_version)
        return search

    def build(self, ids: np.ndarray, owners: np.ndarray, matrix: np.ndarray, people_version: int) -> None:
        AnnSearch.builds += 1
        order = np.argsort(ids, kind="stable")
        unit = self._normalised(matrix)
        self.projection = Projection.fit(unit)
        tail = PENALTY_COORDINATES if self.penalty is not None else 0  # own codes (ivf): not mixed into the others
        self.graph = INDEXES[self.kind](self.graph_dim, capacity=len(ids) + 1024, tail=tail)
        shuffled = np.random.default_rng(BUILD_ORDER_SEED).permutation(len(ids))  # see BUILD_ORDER_SEED
        held = self._penalised(self._projected(unit[shuffled]), owners[shuffled])
        self.graph.add(ids[shuffled], held, threads=os.cpu_count() or 1)
        self._hold(ids[order].astype(np.int64), owners[order].astype(np.int64))
        self.people_version = people_version
        self.origin = "built"
        self.reason = self.reason or "no index beside the gallery"
        if self.path is not None:
            self.save()

    def _load(self, people_version: int) -> None:
        head = header_path(self.path)  # type: ignore[arg-type]
        if not head.is_file():
            raise AnnIndexError("no index beside the gallery")
        try:
            header = json.loads(head.read_text())
            ok = header["format"] == FORMAT and header["library"] == INDEXES[self.kind].library()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnnIndexError("the index's header is damaged") from exc
        if not ok:
            raise AnnIndexError("the index was saved in another format or by another library version")
        if header["gallery"] != self.identity:
            raise AnnIndexError("the index beside the gallery belongs to another gallery")
        if header["dim"] != self.dim or header["normalise"] != self.normalise:
            raise AnnIndexError("the index was built for another metric or size of embedding")
        if header.get("params") != INDEXES[self.kind].params():
            raise AnnIndexError("the index was built with other parameters")
        if header.get("scores", "distance") != self.scores:
            raise AnnIndexError("the index was built for other scores")
        folder = head.parent
        files = {}
        for part in ("graph", "ids"):
            name = header.get(part)
            file = folder / str(name)
            if not name or "/" in str(name) or not file.is_file():
                raise AnnIndexError(f"the index's {PARTS[part]} file is missing")
            if file.stat().st_size != header[f"{part}_size"] or _crc(file) != header[f"{part}_crc"]:
                raise AnnIndexError(f"the index's {PARTS[part]} file is damaged (size or checksum differs)")
            files[part] = file
        with np.load(files["ids"], allow_pickle=False) as saved:
            ids, deleted = saved["ids"].astype(np.int64), saved["deleted"].astype(np.int64)
            # owners (-1: unknown, in files of the first version) say whose statistics a change touches
            known = "owners" in saved.files and len(saved["owners"]) == len(ids)
            self._hold(ids, saved["owners"].astype(np.int64) if known else np.full(len(ids), -1, np.int64))
            self.kept = {k[5:]: saved[k] for k in saved.files if k.startswith("kept_")}
            try:
                self.projection = Projection.from_arrays(saved)
            except ValueError as exc:
                raise AnnIndexError(f"the index's {exc}") from exc
        if self.projection is not None and self.projection.axes.shape[0] != self.dim:
            raise AnnIndexError("the index's projection is for another size of embedding")
        self.graph = INDEXES[self.kind].load(files["graph"], self.graph_dim, len(self.ids), deleted)
        self.people_version = int(header["people_version"])
        self._header = header
        self._dirty = False

    @property
    def graph_dim(self) -> int:
        """How many numbers the graph holds per template."""
        extra = PENALTY_COORDINATES if self.penalty is not None else 0
        return (self.dim if self.projection is None else self.projection.dim) + extra

    @property
    def scores(self) -> str:
        """Which scores the index's order follows: ``distance``, or its penalty's ``name``."""
        return "distance" if self.penalty is None else self.penalty.name

    def _hold(self, ids: np.ndarray, owners: np.ndarray) -> None:
        """Hold ``ids`` (sorted) and their ``owners``, and the owner of each id addressed by the id
        itself (-1: none), which :meth:`candidates` reads."""
        self.ids, self.owners = ids, owners
        self._owner_of = id_table(ids, owners)

    # -- changes -----------------------------------------------------------------------
    def sync(self, ids: np.ndarray, owners: np.ndarray, matrix: np.ndarray, people_version: int) -> int:
        """Bring the graph to the store's templates (``ids``, ``owners``, ``matrix``):
        add what is new, remove what went, replace a vector that differs (a reused id), and
        with a penalty, give every template of a person whose templates changed their new one.
        Returns how many templates changed."""
        order = np.argsort(ids, kind="stable")
        ids, owners, matrix = ids[order], owners[order], matrix[order]
        gone = np.setdiff1d(self.ids, ids, assume_unique=True)
        new = ~np.isin(ids, self.ids, assume_unique=True)
        both = np.flatnonzero(~new)
        # the templates' own coordinates are compared (a penalty is its owner's, handled below)
        prepared = self._projected(self._normalised(matrix[both]))
        differ = []
        for start in range(0, len(both), 65_536):  # compare in chunks: bounded memory
            sl = slice(start, start + 65_536)
            held = self.graph.vectors(ids[both[sl]])[:, : prepared.shape[1]]
            differ.extend((both[sl][np.any(held != prepared[sl], axis=1)]).tolist())
        differ = np.asarray(differ, np.int64)
        added = np.flatnonzero(new)
        old_owners = self.owners[np.isin(self.ids, gone, assume_unique=True)] if len(gone) else self.owners[:0]
        self.touched = np.unique(np.r_[old_owners, owners[differ], owners[added]]).astype(np.int64)
        changed = len(gone) + len(differ) + len(added)
        if self.penalty is not None and len(self.touched):  # their statistics, so their penalty, moved
            differ = np.union1d(differ, both[np.isin(owners[both], self.touched)])
        self.graph.remove(gone)
        self.graph.update(ids[differ], self._prepare(matrix[differ], owners[differ]))
        if len(added):
            self.graph.add(ids[added], self._prepare(matrix[added], owners[added]), threads=os.cpu_count() or 1)
        self._hold(ids.astype(np.int64), owners.astype(np.int64))
        self.people_version = people_version
        self.unsaved += changed
        self._dirty = self._dirty or changed > 0
        return changed

    def add(self, ids: Sequence[int], owner: int, vectors: np.ndarray, people_version: int) -> None:
        """Templates ``ids`` of ``owner`` were added to the store (now at ``people_version``);
        with a penalty, the owner's earlier templates take their new one too."""
        ids = np.asarray(ids, np.int64)
        self.graph.add(ids, self._prepare(vectors, np.full(len(ids), owner, np.int64)))
        earlier = self.ids[self.owners == owner]
        if self.penalty is not None and len(earlier):
            held = self.graph.vectors(earlier)[:, :-PENALTY_COORDINATES]
            self.graph.update(earlier, self._penalised(held, np.full(len(earlier), owner, np.int64)))
        where = np.searchsorted(self.ids, ids)
        self._hold(np.insert(self.ids, where, ids), np.insert(self.owners, where, np.full(len(ids), owner, np.int64)))
        self._changed(len(ids), people_version)

    def remove_person(self, owner: int, people_version: int) -> int:
        """Every template of ``owner`` was removed from the store."""
        mine = self.owners == owner
        self.graph.remove(self.ids[mine])
        self._hold(self.ids[~mine], self.owners[~mine])
        self._changed(int(mine.sum()), people_version)
        return int(mine.sum())

    def touch(self, people_version: int) -> None:
        """The store changed without a template changing (a rename)."""
        self._changed(0, people_version)

    def _changed(self, n: int, people_version: int) -> None:
        self.people_version = people_version
        self._dirty = self._dirty or n > 0
        self.unsaved += max(n, 1)
        if self.path is not None and self.unsaved >= SAVE_EVERY:
            self.save()

    def keep_with_graph(self, arrays: Callable[[], dict[str, np.ndarray]], changed: bool) -> None:
        """Save ``arrays()`` (the user's, e.g. cohort statistics) with the graph from now on;
        ``changed``: they differ from what the files hold, so save them (now, unless the graph
        was loaded as saved: then on close)."""
        self.keep = arrays
        if changed:
            self.unsaved += 1
            self._dirty = True
        if self.unsaved and self.origin != "loaded":
            self.save()

    # -- search ------------------------------------------------------------------------
    def nearest(self, query: np.ndarray, k: int, effort: float | None = None) -> np.ndarray:
        """The template ids of (about) the ``k`` nearest templates by the index, nearest first
        (``effort``: how hard it searches, else the index's default for its size: the share of
        the lists scanned for ``ivf``, the search list for ``hnsw``)."""
        return self.graph.search(self._prepare(query)[0], k, effort)

    def candidates(self, query: np.ndarray, k: int) -> np.ndarray:
        """Owners of the :func:`candidate_count` nearest templates, nearest first, each once."""
        owners = known(self._owner_of, self.nearest(query, candidate_count(k)))
        return np.fromiter(dict.fromkeys(owners.tolist()), np.int64)

    # -- files -------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the graph beside the gallery: data files under new names, then the
        header (atomically), then old data files go. A crash leaves the old graph or
        the new one, never a mix (and at worst a stray file, removed next time).
        A folder that cannot be written to keeps the graph in memory only (False)."""
        if self.path is None:
            return False
        try:
            if self._dirty or self._header is None:
                self._save()
            else:  # the same graph at a newer people_version (a rename; a stale graph nothing differed from)
                self._write_header({**self._header, "people_version": self.people_version})
        except OSError:
            return False
        self.unsaved = 0
        return True

    def _save(self) -> None:
        head = header_path(self.path)  # type: ignore[arg-type]
        token = secrets.token_hex(6)
        name = Path(self.path).name  # type: ignore[arg-type]
        graph_file = head.parent / f"{name}.ann.{token}.{self.graph.suffix}"
        ids_file = head.parent / f"{name}.ann.{token}.npz"
        tmp = graph_file.with_suffix(".tmp")
        self.graph.save(tmp)
        _fsync_replace(tmp, graph_file)
        with open(ids_file, "wb") as f:
            kept = {f"kept_{k}": v for k, v in (self.keep() if self.keep is not None else {}).items()}
            deleted = self.graph.deleted
            projection = self.projection.arrays() if self.projection is not None else {}
            np.savez(f, ids=self.ids, owners=self.owners, deleted=deleted, **kept, **projection)
            f.flush()
            os.fsync(f.fileno())
        header = {
            "format": FORMAT,
            "library": INDEXES[self.kind].library(),
            "gallery": self.identity,
            "people_version": self.people_version,
            "templates": len(self.ids),
            "dim": self.dim,
            "graph_dim": self.graph_dim,
            "normalise": self.normalise,
            "graph": graph_file.name,
            "graph_size": graph_file.stat().st_size,
            "graph_crc": _crc(graph_file),
            "ids": ids_file.name,
            "ids_size": ids_file.stat().st_size,
            "ids_crc": _crc(ids_file),
            "params": INDEXES[self.kind].params(),
            "scores": self.scores,
        }
        self._write_header(header)
        self._dirty = False
        keep = {graph_file.name, ids_file.name, head.name}
        for old in head.parent.glob(f"{name}.ann.*"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def _write_header(self, header: dict) -> None:
        head = header_path(self.path)  # type: ignore[arg-type]
        tmp = head.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(header, indent=1))
        _fsync_replace(tmp, head)
        self._header = header

    def __len__(self) -> int:
        return len(self.ids)


def server_index_path(location: str, identity: str) -> Path | None:
    """Where this machine keeps the in-process index of a server's gallery: the cache's ``indexes``
    folder (:func:`facegate.paths.cache_dir`), under a name drawn from the gallery's ``location``
    (its URL without the password) and ``identity``, so that a copy of the database elsewhere, or
    another schema, gets its own. None when the folder cannot be made (the index stays in memory)."""
    folder = cache_dir("indexes")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / hashlib.sha256(f"{location}\n{identity}".encode()).hexdigest()[:24]


def remove_files(gallery_path: str | Path) -> None:
    """Remove a gallery's graph files (they are rebuilt when next needed)."""
    head = header_path(gallery_path)
    for old in head.parent.glob(f"{Path(gallery_path).name}.ann.*"):
        old.unlink(missing_ok=True)
