"""The gallery's default approximate index: an inverted file with 4-bit fast-scan codes (faiss).

The templates (as :class:`~facegate.gallery.ann.AnnSearch` prepares them: unit length where
the metric wants it, on the gallery's principal axes) are split by k-means into about
``sqrt(n) / 2`` lists. A search scores every template of the lists nearest the probe
(:data:`PROBE_SHARE` of them) on 4-bit product-quantisation codes, two coordinates per code
(faiss's ``IndexIVFPQFastScan``: the codes of a million templates take 20 MB and are scanned
with SIMD shuffles), keeps the :data:`POOL` best (:data:`TAIL_POOL` with a penalty), and ranks
those on the float vectors it keeps, returning the ``k`` nearest by exact distance.

The codes are of the templates turned by a random rotation (:func:`rotation`; distances do
not change). On the principal axes the first pairs of coordinates hold most of the variance and
the last almost none, yet each pair gets the same 16 centres: the rotation spreads the variance
evenly over the pairs, and the codes rank well enough that half the pool finds more (at 1M
templates, the exact nearest template among the 64 found for 0.9975 of the tuning probes with
256 kept, in each of three draws of the rotation, where the unrotated codes found 0.995 with 512).
A penalty's coordinates (``tail``: :class:`~facegate.gallery.ann.Penalty`) are not rotated and
keep codes of their own: mixed into the others, the penalty's small spread was lost in their
quantisation (at 1M, the best-scoring person was among the pool's owners for 0.957 of the
reported probes, whether 30% of the lists were scanned or all of them; with its own codes 0.997).

Why this and not hnswlib's graph (:class:`~facegate.gallery.ann.HnswGraph`, ``index="hnsw"``;
``bench/ann_frontier.py`` and the README's "Large galleries"): at 1M templates it builds in
5 s where the graph took 10 minutes, opens in seconds where the graph took 12-45 s, its
files are 355 MB against 612, and faiss-cpu ships wheels where hnswlib needs a compiler.
Its search alone, on two threads, is about 2.3 times faster than the graph's at a higher
recall, and a whole identification at 1M took 0.89 ms against the graph's 1.60 in the same
run (``bench/index_ab.py``; 0.91-1.57 against 1.42-2.72 in earlier runs, before the rotation),
finding exact search's best person for all 400 probes against 0.980.

Changes without a full rebuild:

- **adding** encodes the new templates into their lists;
- **removing** marks the rows dead (faiss's own removal from fast-scan lists corrupts the
  codes of the templates that remain, faiss-cpu 1.15: ``tests/test_ivf.py``); a search skips
  them, and once a quarter of the rows are dead the lists are re-filled from the live rows
  (no new k-means);
- the lists are **trained again** (a new k-means, a few seconds at 1M) when the index has
  grown :data:`GROWTH` times since they were trained, so that their number keeps up with
  the gallery; below :data:`MIN_TRAIN` templates there are no lists and every vector is scored.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

#: share of the lists a search scans, by index size (from that many templates on), chosen on
#: bench/gallery_scale.py's tuning probes with a margin: k-means trained on other draws moved the
#: share of probes whose exact nearest template was found by up to 2 points (at 1M and a share of
#: 0.2: 0.980-0.998 over nine trainings; at 0.3, 0.995-0.998 over four). A search at 10k templates costs
#: about the same at any share (0.2 ms), so small indexes scan half their lists
PROBE_SHARE: dict[int, float] = {0: 0.5, 50_000: 0.4, 300_000: 0.3}
#: how many of the codes' best candidates are ranked on the float vectors (or the templates asked
#: for, when more): at 1M templates, 30% of the lists scanned and 64 asked, on the tuning probes in
#: three draws of the rotation, 128 found the exact nearest template for 0.9875-0.99 of them, 192 for
#: 0.9925-0.9975, 256 for 0.9975 each time and 512 for 0.9975-1.0 (the unrotated codes: 512, 0.995)
POOL = 256
#: the pool of an index whose last coordinates are its owners' penalty (normalised scores, whose best
#: person sits further down the codes' order). bench/ivf_trainings.py at 1M templates, seven trainings
#: (the index as kept and six in other orders), tuning probes of test people: the best-scoring
#: person was among a search's candidates for 0.9910 of them on average at 256 (lowest training
#: 0.9857), 0.9939 at 384 (0.9886) and 0.9959 at 512 (0.9914), a whole identification taking 0.89,
#: 0.96 and 1.02 ms: 512 would hold 0.99 in every training but put the 1M p50 past the 1 ms
#: target, so 384, with a margin. Plain distances at 256: 0.9964 (0.9900), which :data:`POOL` keeps
TAIL_POOL = 384
#: the random rotation the codes are taken after (a seeded draw: a rebuilt index is the same)
ROTATION_SEED = 0
#: fewer templates than this: no lists, every vector is scored exactly
MIN_TRAIN = 2_000
#: the lists are trained again when the index holds this many times the templates they were trained on
GROWTH = 4
#: k-means trains on at most this many templates per list (a seeded draw; faiss's own cap)
TRAIN_PER_LIST = 256
#: the lists are re-filled from the live rows when this share of the rows is dead
DEAD_SHARE = 0.25
#: threads scanning the lists of one search (faiss splits the lists between them), from
#: :data:`SPLIT_FROM` templates scanned on: bench/index_ab.py at 1M (300k scanned) took 0.77-0.81 ms
#: on two threads against 0.99-1.07 on one; at 100k (40k scanned) one thread was faster (0.26 ms
#: against 0.32: waking the second costs more than it saves)
SEARCH_THREADS = min(2, os.cpu_count() or 1)
SPLIT_FROM = 100_000
#: faiss's fast-scan search that splits one query's lists between threads (``implem`` 15 of
#: ``IndexIVFFastScan``); the automatic choice parallelises over queries, and a gallery asks one
SPLIT_LISTS = 15


def rotation(dim: int, tail: int = 0) -> np.ndarray:
    """The random rotation (orthogonal ``dim`` x ``dim``, drawn with :data:`ROTATION_SEED`) the codes
    are taken after; the last ``tail`` coordinates are left as they are (their own codes)."""
    turned = dim - tail
    q, r = np.linalg.qr(np.random.default_rng(ROTATION_SEED).standard_normal((turned, turned)))
    out = np.eye(dim, dtype=np.float32)
    out[:turned, :turned] = q * np.sign(np.diag(r))
    return out


def list_count(templates: int) -> int:
    """How many lists an index of ``templates`` templates is trained with."""
    return max(8, round(math.sqrt(templates) / 2))


def probe_share(templates: int) -> float:
    """The share of the lists a search scans at this size (:data:`PROBE_SHARE`)."""
    return PROBE_SHARE[max(size for size in PROBE_SHARE if templates >= size)]


class IvfIndex:
    """Template vectors of ``dim`` numbers, labelled by template id, searched by inverted lists."""

    module, suffix = "faiss", "ivf.npz"

    def __init__(self, dim: int, capacity: int = 1024, tail: int = 0) -> None:
        self.dim = dim
        #: the last coordinates that are not rotated (an owner's penalty: see :class:`~facegate.gallery.ann.Penalty`)
        self.tail = tail
        self._vectors = np.zeros((max(capacity, 16), dim), np.float32)
        self._row_id = np.full(len(self._vectors), -1, np.int64)  # template id of each row, -1: dead or unused
        self._rows = 0  # rows used
        self._live = 0  # rows used and not dead (counted: a search asks for it)
        self._row_of = np.zeros(0, np.int64)  # row of each template id (-1: none)
        self._lists = None  # the faiss index over rows [0, _listed), or None: score every row
        self._rotation = np.eye(dim, dtype=np.float32)  # what the codes are taken after (set when trained)
        self._setting = (0, 0)  # the lists' nprobe and implem as last set
        self._listed = 0
        self._trained_at = 0

    @staticmethod
    def library() -> str:
        from importlib.metadata import version

        return f"faiss-cpu {version('faiss-cpu')}"

    @staticmethod
    def params() -> dict:
        return {"kind": "ivf-pq4fs", "growth": GROWTH, "rotated": True}

    @property
    def live(self) -> int:
        return self._live

    @property
    def deleted(self) -> np.ndarray:
        """Ids marked deleted and still held (none: a removed template's row is dead, its id free)."""
        return np.zeros(0, np.int64)

    @property
    def lists(self) -> int:
        """How many inverted lists the index has (0: it scores every vector)."""
        return 0 if self._lists is None else int(self._lists.nlist)

    # -- changes -------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int = 1) -> None:
        """Add templates whose ids the index does not hold (an id removed earlier may come back)."""
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        if not len(ids):
            return
        self.remove(ids)  # an id it holds gets a new row
        start, end = self._rows, self._rows + len(ids)
        if end > len(self._vectors):
            grown = max(end, 2 * len(self._vectors))
            self._vectors = np.resize(self._vectors, (grown, self.dim))
            self._row_id = np.r_[self._row_id[: self._rows], np.full(grown - self._rows, -1, np.int64)]
        self._vectors[start:end] = vectors
        self._row_id[start:end] = ids
        if int(ids.max()) >= len(self._row_of):
            self._row_of = np.r_[self._row_of, np.full(int(ids.max()) + 1 - len(self._row_of), -1, np.int64)]
        self._row_of[ids] = np.arange(start, end)
        self._rows = end
        self._live = live = self._live + len(ids)
        if live >= MIN_TRAIN and (self._lists is None or live >= GROWTH * self._trained_at):
            self._train(threads)
        elif self._lists is not None:
            self._list(threads)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """New vectors for ids the index holds."""
        self.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.unique(np.asarray(ids, np.int64))
        ids = ids[(ids >= 0) & (ids < len(self._row_of))]
        rows = self._row_of[ids]
        rows = rows[rows >= 0]
        self._row_id[rows] = -1
        self._row_of[ids] = -1
        self._live -= len(rows)
        dead = self._rows - self._live
        if self._lists is not None and dead >= DEAD_SHARE * max(self._rows, 1):
            self._compact()

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        return self._vectors[self._row_of[ids]].copy()

    # -- lists -----------------------------------------------------------------------------
    def _train(self, threads: int) -> None:
        """New lists (k-means and codes) for the live rows."""
        import faiss

        self._compact(relist=False)
        nlist = list_count(self._rows)
        sample = self._vectors[: self._rows]
        if len(sample) > TRAIN_PER_LIST * nlist:
            pick = np.random.default_rng(0).choice(len(sample), TRAIN_PER_LIST * nlist, replace=False)
            sample = sample[np.sort(pick)]
        codes = self.dim // 2 if self.dim % 2 == 0 else self.dim  # 4-bit codes of 2 coordinates (or 1)
        lists = faiss.IndexIVFPQFastScan(faiss.IndexFlatL2(self.dim), self.dim, nlist, codes, 4)
        lists.by_residual = False  # one lookup table per query, not per list: as accurate here, faster
        self._rotation = rotation(self.dim, self.tail)
        faiss.omp_set_num_threads(max(threads, 1))
        lists.train(self._rotated(sample))
        self._lists, self._listed, self._trained_at, self._setting = lists, 0, self._rows, (0, 0)
        self._list(threads)

    def _list(self, threads: int) -> None:
        """Encode the rows added since the lists were last filled."""
        import faiss

        if self._listed < self._rows:
            faiss.omp_set_num_threads(max(threads, 1))
            rows = np.arange(self._listed, self._rows)
            self._lists.add_with_ids(self._rotated(self._vectors[self._listed : self._rows]), rows)
            self._listed = self._rows

    def _rotated(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(vectors @ self._rotation, np.float32)

    def _compact(self, relist: bool = True) -> None:
        """Drop dead rows (renumbering the live ones) and, with ``relist``, fill the lists again."""
        keep = np.flatnonzero(self._row_id[: self._rows] >= 0)
        n = len(keep)
        self._vectors[:n] = self._vectors[keep]
        self._row_id[:n] = self._row_id[keep]
        self._row_id[n : self._rows] = -1
        self._rows = n
        self._row_of[self._row_id[:n]] = np.arange(n)
        if self._lists is not None:
            self._lists.reset()
            self._listed = 0
            if relist:
                self._list(os.cpu_count() or 1)

    # -- search ------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, effort: float | None = None) -> np.ndarray:
        """The template ids of the ``k`` nearest templates, nearest first (exact distances among
        the candidates). ``effort``: the share of the lists scanned, else :func:`probe_share`'s."""
        import faiss

        q = np.ascontiguousarray(query, np.float32).reshape(1, self.dim)
        if self._lists is None:
            rows = np.flatnonzero(self._row_id[: self._rows] >= 0)
        else:
            lists = self._lists
            share = effort if effort is not None else probe_share(self._live)
            threads = SEARCH_THREADS if share * self._rows >= SPLIT_FROM else 1
            setting = (max(1, math.ceil(share * lists.nlist)), SPLIT_LISTS if threads > 1 else 0)
            if setting != self._setting:  # set through SWIG only when it changes
                lists.nprobe, lists.implem = self._setting = setting
            faiss.omp_set_num_threads(threads)
            rows = lists.search(self._rotated(q), max(TAIL_POOL if self.tail else POOL, k))[1][0]
            rows = rows[rows >= 0]
            if self._live < self._rows:  # dead rows are still in the lists
                rows = rows[self._row_id[rows] >= 0]
        # squared distances to the candidates' vectors, read in place (no gathered copy)
        distances = np.empty(len(rows), np.float32)
        if len(rows):
            rows = np.ascontiguousarray(rows, np.int64)
            ptr = faiss.swig_ptr
            faiss.fvec_L2sqr_by_idx(ptr(distances), ptr(q), ptr(self._vectors), ptr(rows), self.dim, 1, len(rows))
        if len(rows) > k:
            part = np.argpartition(distances, k - 1)[:k]
            rows, distances = rows[part], distances[part]
        return self._row_id[rows[np.argsort(distances, kind="stable")]]

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        import faiss

        lists = faiss.serialize_index(self._lists) if self._lists is not None else np.zeros(0, np.uint8)
        with open(path, "wb") as f:
            np.savez(
                f,
                vectors=self._vectors[: self._rows],
                ids=self._row_id[: self._rows],
                lists=lists,
                rotation=self._rotation,
                listed=self._listed,
                trained_at=self._trained_at,
                tail=self.tail,
            )

    @classmethod
    def load(cls, path: Path, dim: int, live: int, deleted: np.ndarray) -> IvfIndex:
        import faiss

        from facegate.gallery.ann import AnnIndexError

        try:
            with np.load(path, allow_pickle=False) as saved:
                vectors, ids = saved["vectors"].astype(np.float32), saved["ids"].astype(np.int64)
                lists, listed, trained_at = saved["lists"], int(saved["listed"]), int(saved["trained_at"])
                turn = saved["rotation"].astype(np.float32)
                tail = int(saved["tail"]) if "tail" in saved.files else 0
            index = cls(dim, capacity=len(ids) + 1024, tail=tail)
            if vectors.shape != (len(ids), dim):
                raise ValueError("vectors and ids differ")
            index._vectors[: len(ids)] = vectors
            index._row_id[: len(ids)] = ids
            index._rows = len(ids)
            index._live = int(np.count_nonzero(ids >= 0))
            held = ids[ids >= 0]
            index._row_of = np.full(int(held.max()) + 1 if len(held) else 0, -1, np.int64)
            index._row_of[held] = np.flatnonzero(ids >= 0)
            if turn.shape != (dim, dim):
                raise ValueError("the rotation is of another size")
            index._rotation = turn
            if len(lists):
                index._lists = faiss.deserialize_index(lists)
                index._listed, index._trained_at = listed, trained_at
                if index._lists.d != dim or index._lists.ntotal != listed or listed > len(ids):
                    raise ValueError("the lists hold other rows")
                index._list(os.cpu_count() or 1)
        except Exception as exc:
            raise AnnIndexError(f"the index file cannot be read ({exc})") from exc
        if index.live != live or len(deleted):
            raise AnnIndexError("the index holds other templates than its header says")
        return index
