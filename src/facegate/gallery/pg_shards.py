"""pgvector's search split over shards of the people, the shards searched at once.

One HNSW graph of a million templates needs about 10,000 steps, each a lookup in the server's
shared buffers, to find exact search's best person for 0.99 of the probes: about 11 ms on a
2-core machine whatever its settings (README, "A gallery in PostgreSQL"). A graph of half the
people finds as much in fewer steps, and two such graphs can be walked at once, one per core.
So a PostgreSQL gallery may split its search into ``shards``:

- one partial HNSW index per shard ``r``, over the templates of the people whose id leaves ``r``
  divided by ``shards`` (``WHERE person_id % shards = r``): a person's templates all lie in one
  shard, and PostgreSQL puts an enrolment into its shard's index by itself;
- on the templates in half precision (``embedding::halfvec(dim)``: each graph element half the
  size; the gallery rescores its candidates on their exact templates in any case);
- a search asks every shard at once, each on a connection of its own (:class:`ShardedSearcher`),
  and merges the templates they found, nearest first.

:func:`build_shards` (``facegate gallery shards``) makes the indexes and records the layout in
``meta`` (``search_shards``); a store opened on a gallery that records one searches with
:class:`ShardedSearcher` (``index="ann"``), and with the store's own index otherwise. A build
holds the gallery's writers back (not its readers) while it runs: at a million templates with
m 64 and ef_construction 256, about 20 minutes a shard on 2 cores.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass

import numpy as np

from facegate.errors import GalleryError
from facegate.gallery.store_postgres import (
    COSINE_METRICS,
    PgSearcher,
    PostgresStore,
    Vector,
    _build_memory,
    _driver,
    connect,
)

#: the ``meta`` key recording the shards' layout (a store's own: never copied to another gallery)
SHARDS_META = "search_shards"
#: the shards' graphs: m 64 / ef_construction 256, pgvector's densest graph measured
#: (bench/pgvector_shards.py)
SHARD_M = 64
SHARD_EF_CONSTRUCTION = 256
#: how many templates each shard's search keeps (``hnsw.ef_search``): at 1M templates in 2 shards, the
#: smallest that found exact search's best person for 0.99 of the tuning probes (bench/pgvector_shards.py)
SHARD_EF_SEARCH = 84
#: the most shards a gallery may have (each search opens a connection per shard)
MAX_SHARDS = 16
#: a shard graph's bytes in memory while it builds, per template: its numbers in half precision, this
#: much beyond them, and this much per link (about 2.9 KB at m 64; a build that does not fit spills to
#: disk, slower, the same graph)
BUILD_BYTES_PER_TEMPLATE = 300
BUILD_BYTES_PER_LINK = 36
#: a shard index's name is ``templates_shard_<r>_of_<shards>``
INDEX_NAME = r"^templates_shard_[0-9]+_of_[0-9]+$"


@dataclass(frozen=True)
class ShardLayout:
    """How the search is split: how many shards, their graphs' build parameters, and how many templates
    each shard's search keeps."""

    shards: int
    m: int = SHARD_M
    ef_construction: int = SHARD_EF_CONSTRUCTION
    ef_search: int = SHARD_EF_SEARCH

    def index(self, shard: int) -> str:
        return f"templates_shard_{shard}_of_{self.shards}"

    def indexes(self) -> list[str]:
        return [self.index(r) for r in range(self.shards)] if self.shards > 1 else []

    def options(self) -> list[str]:
        """The indexes' storage parameters, as ``pg_class.reloptions`` lists them (sorted)."""
        return sorted([f"m={self.m}", f"ef_construction={self.ef_construction}"])

    def check(self) -> None:
        """A GalleryError for a layout pgvector cannot build (before anything changes)."""
        if not 1 <= self.shards <= MAX_SHARDS:
            raise GalleryError(f"shards must be between 1 and {MAX_SHARDS}, not {self.shards}")
        if not 2 <= self.m <= 100:
            raise GalleryError(f"pgvector's m must be between 2 and 100, not {self.m}")
        if not 2 * self.m <= self.ef_construction <= 1000:
            raise GalleryError(
                f"pgvector's ef_construction must be between twice m ({2 * self.m}) and 1000, "
                f"not {self.ef_construction}"
            )
        if not 1 <= self.ef_search <= 1000:
            raise GalleryError(f"pgvector's ef_search must be between 1 and 1000, not {self.ef_search}")


@dataclass(frozen=True)
class ShardReport:
    """What :func:`build_shards` did (JSON-serialisable)."""

    gallery: str
    shards: int
    m: int
    ef_construction: int
    ef_search: int
    #: indexes built now, already there (resumed builds keep them), and dropped (another layout's)
    built: list[str]
    kept: list[str]
    dropped: list[str]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _expression(dim: int) -> str:
    return f"embedding::halfvec({int(dim)})"


def _operators(metric: str) -> tuple[str, str]:
    """The operator class a shard index is built with, and the distance operator searching it."""
    return ("halfvec_cosine_ops", "<=>") if metric in COSINE_METRICS else ("halfvec_l2_ops", "<->")


def index_statement(store: PostgresStore, layout: ShardLayout, shard: int) -> str:
    """The statement building shard ``shard``'s index (kept when it is there already)."""
    opclass, _ = _operators(store.metric)
    return (
        f"CREATE INDEX IF NOT EXISTS {layout.index(shard)} ON templates USING hnsw "
        f"(({_expression(store.dim)}) {opclass}) WITH (m = {layout.m}, ef_construction = {layout.ef_construction}) "
        f"WHERE person_id % {layout.shards} = {shard}"
    )


def recorded_layout(store: PostgresStore) -> ShardLayout | None:
    """The shards the gallery records, or None where its search is not split."""
    with store.reading() as db:
        row = db.raw.execute("SELECT value FROM meta WHERE key = %s", (SHARDS_META,)).fetchone()
    return ShardLayout(**json.loads(row[0])) if row else None


def shard_indexes(store: PostgresStore) -> dict[str, list[str]]:
    """The shard indexes on the gallery's templates now: name -> storage parameters."""
    with store.reading() as db:
        rows = db.raw.execute(
            "SELECT c.relname, c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'templates'::regclass AND c.relname ~ %s",
            (INDEX_NAME,),
        ).fetchall()
    return {name: sorted(options or []) for name, options in rows}


def build_shards(
    store: PostgresStore,
    shards: int,
    m: int = SHARD_M,
    ef_construction: int = SHARD_EF_CONSTRUCTION,
    ef_search: int = SHARD_EF_SEARCH,
) -> ShardReport:
    """Split the gallery's pgvector search over ``shards`` partial indexes (1: the store's one index again),
    each searched keeping ``ef_search`` templates.

    Indexes of another layout are dropped; those of this one already there are kept (a build that
    was interrupted resumes, and another ``ef_search`` only changes the record); the layout is
    recorded once every index is built. Galleries opened after that search every shard at once;
    those open meanwhile keep their search until reopened."""
    if not isinstance(store, PostgresStore):
        raise GalleryError(f"search shards are pgvector indexes: {store.path} is not a PostgreSQL gallery")
    layout = ShardLayout(shards, m, ef_construction, ef_search)
    layout.check()
    start = time.perf_counter()
    with store.transaction() as db:  # searches opened from now on use one index until the shards are built
        db.raw.execute("DELETE FROM meta WHERE key = %s", (SHARDS_META,))
    there = shard_indexes(store)
    wanted = layout.indexes()
    dropped = [n for n, options in there.items() if n not in wanted or options != layout.options()]
    built, kept = [], [n for n in wanted if n in there and n not in dropped]
    per_template = 2 * store.dim + BUILD_BYTES_PER_TEMPLATE + BUILD_BYTES_PER_LINK * m
    with store.reading() as db:
        for name in dropped:
            db.raw.execute(f"DROP INDEX IF EXISTS {name}")
        for shard, name in enumerate(wanted):
            if name in kept:
                continue
            with db.raw.transaction():
                size = db.raw.execute(f"SELECT COUNT(*) FROM templates WHERE person_id % {shards} = {shard}")
                _build_memory(db, int(size.fetchone()[0]), store.dim, per_template)
                db.raw.execute(index_statement(store, layout, shard))
            built.append(name)
    if wanted:
        with store.transaction() as db:
            db.raw.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (SHARDS_META, json.dumps(asdict(layout))),
            )
    seconds = round(time.perf_counter() - start, 1)
    return ShardReport(store.path, shards, m, ef_construction, ef_search, built, kept, sorted(dropped), seconds)


class ShardedSearcher(PgSearcher):
    """Candidates from every shard's index at once (a connection each; the calling thread searches the
    first shard, a thread of its own each other one), merged nearest first."""

    def __init__(self, store: PostgresStore, layout: ShardLayout) -> None:
        super().__init__(store, layout.ef_search)
        self.layout = layout
        self.operator = _operators(store.metric)[1]
        self._connections: list = [None] * layout.shards
        self._set_ef: list[int | None] = [None] * layout.shards
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def sql(self, shard: int = 0) -> str:
        """Shard ``shard``'s search (parameters: the query, how many templates), nearest first, with the
        distance it is ordered by."""
        half = _expression(self.store.dim)
        return (
            f"SELECT id, person_id, {half} {self.operator} %s::halfvec({int(self.store.dim)}) AS distance "
            f"FROM templates WHERE person_id %% {self.layout.shards} = {shard} ORDER BY distance LIMIT %s"
        )

    def _connection(self, shard: int):
        """Shard ``shard``'s connection, opened again when the server dropped it."""
        conn = self._connections[shard]
        if conn is None or conn.closed or conn.broken:
            conn = connect(self.store.url)
            self._connections[shard], self._set_ef[shard] = conn, None
        return conn

    def _search(self, shard: int, query: np.ndarray, m: int, ef: int) -> list[tuple]:
        """Shard ``shard``'s templates; asked once more on a new connection where the server had dropped
        this one (a read: nothing is done twice)."""
        conn = self._connection(shard)
        try:
            return self._ask(shard, conn, query, m, ef)
        except _driver().OperationalError:
            if not conn.broken:
                raise
        return self._ask(shard, self._connection(shard), query, m, ef)

    def _ask(self, shard: int, conn, query: np.ndarray, m: int, ef: int) -> list[tuple]:
        if self._set_ef[shard] != ef:  # a session setting: set when it changes, not per query
            conn.execute(f"SET hnsw.ef_search = {int(ef)}")
            self._set_ef[shard] = ef
        return conn.execute(self.sql(shard), (Vector(query), int(m))).fetchall()

    def templates(self, query: np.ndarray, m: int) -> list[tuple[int, int]]:
        """The ``m`` nearest templates each shard's index found, all shards' together, nearest first."""
        ef = max(self.ef_search, m)
        with self._lock, self.store._errors():
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.layout.shards - 1, thread_name_prefix="facegate-shard")
            others = [self._pool.submit(self._search, r, query, m, ef) for r in range(1, self.layout.shards)]
            try:
                rows = self._search(0, query, m, ef)  # this thread searches the first shard meanwhile
            finally:
                wait(others)  # none left running on its connection, whatever happened here
            rows += [row for search in others for row in search.result()]
        rows.sort(key=lambda row: row[2])
        return [(int(t), int(p)) for t, p, _ in rows]

    def missing_indexes(self) -> list[str]:
        """The shard indexes the gallery's layout records that the server lacks (dropped by hand: the
        search still answers, from the store's index or a scan of the table, slower and less often
        right); ``facegate gallery shards`` builds them again."""
        there = shard_indexes(self.store)
        return [name for name in self.layout.indexes() if name not in there]

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                if conn is not None and not conn.closed:
                    conn.close()
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


def searcher_for(store: PostgresStore) -> PgSearcher:
    """The store's search: every shard at once where the gallery records shards, else its one index."""
    layout = recorded_layout(store)
    return ShardedSearcher(store, layout) if layout is not None else PgSearcher(store)


__all__ = [
    "MAX_SHARDS",
    "SHARDS_META",
    "SHARD_EF_CONSTRUCTION",
    "SHARD_EF_SEARCH",
    "SHARD_M",
    "ShardLayout",
    "ShardReport",
    "ShardedSearcher",
    "build_shards",
    "searcher_for",
]
