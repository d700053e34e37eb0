"""Which approximate-nearest-neighbour library backs a large gallery: measured, not guessed.

Each candidate indexes the same gallery of ``--n`` 128-d float32 templates
(``embeddings_synth``: LFW embeddings plus synthetic people, unit rows, euclidean
metric; 200k by default: on 2 shared cores four 1M builds take hours, and the chosen
library's 1M figures are ``bench/gallery_scale.py``'s) and answers the same 200
probes (100 new photos of enrolled people, 100 strangers), one query at a time:

- build time (all cores), memory (RSS growth of a fresh process, and the saved file),
- query p50 / p95 for the 64 nearest templates (what the gallery asks for), with one
  thread (the gallery's case) and the library's default threading,
- recall@1 and recall@10 of templates against exact search (numpy, float64),
- whether it can add and remove single items, save, load, and what it does with a
  damaged file (truncated, and 4 KiB of bytes overwritten): an exception, a crash of
  the process, or a silent load.

Every library runs in its own process so memory figures do not mix.

    .venv/bin/python bench/ann_choice.py [--n 200000] [--libs hnswlib,faiss-hnsw,faiss-ivf,usearch]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embeddings_synth import draw_people, fit_model, synthetic_gallery

OUT = Path(__file__).resolve().parent / "out"
K = 64  # candidates the gallery asks for
M_LINKS, EF_BUILD, EF_SEARCH = 16, 100, 64


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def probes(matrix: np.ndarray, n: int = 200) -> np.ndarray:
    """Probes like a gallery's: half mated (an enrolled template moved by the difference
    of two photos of one synthetic person: a new photo of them), half strangers (photos
    of new synthetic people)."""
    rng = np.random.default_rng(7)
    _, v = draw_people(n, rng, fit_model(), templates=np.full(n, 2))
    second = v[1::2] - v[0::2]  # within-person differences
    mated = matrix[rng.integers(0, len(matrix), n // 2)] + second[: n // 2]
    q = np.concatenate([mated, v[0::2][n // 2 :]])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sq = (matrix.astype(np.float32) ** 2).sum(1)
    out = np.empty((len(queries), k), np.int64)
    for i, q in enumerate(queries):
        d = sq - 2 * matrix @ q
        top = np.argpartition(d, k)[:k]
        out[i] = top[np.argsort(d[top])]
    return out


class Lib:
    def build(self, matrix: np.ndarray, threads: int) -> None: ...
    def query(self, q: np.ndarray, k: int) -> np.ndarray: ...
    def threads(self, n: int) -> None: ...
    def save(self, path: str) -> None: ...
    def load(self, path: str, dim: int) -> None: ...
    def add_one(self, key: int, v: np.ndarray) -> None: ...
    def remove_one(self, key: int) -> None: ...


class Hnswlib(Lib):
    def build(self, matrix, threads):
        import hnswlib

        self.ix = hnswlib.Index(space="l2", dim=matrix.shape[1])
        self.ix.init_index(
            max_elements=len(matrix) + 1000, M=M_LINKS, ef_construction=EF_BUILD, allow_replace_deleted=True
        )
        self.ix.add_items(matrix, np.arange(len(matrix)), num_threads=threads)
        self.ix.set_ef(EF_SEARCH)

    def threads(self, n):
        self.ix.set_num_threads(n)

    def query(self, q, k):
        return self.ix.knn_query(q, k=k)[0][0]

    def save(self, path):
        self.ix.save_index(path)

    def load(self, path, dim):
        import hnswlib

        self.ix = hnswlib.Index(space="l2", dim=dim)
        self.ix.load_index(path, allow_replace_deleted=True)
        self.ix.set_ef(EF_SEARCH)

    def add_one(self, key, v):
        self.ix.add_items(v[None], [key], replace_deleted=True)

    def remove_one(self, key):
        self.ix.mark_deleted(key)


class FaissHnsw(Lib):
    def build(self, matrix, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        base = faiss.IndexHNSWFlat(matrix.shape[1], M_LINKS)
        base.hnsw.efConstruction = EF_BUILD
        base.hnsw.efSearch = EF_SEARCH
        self.ix = faiss.IndexIDMap(base)
        self.ix.add_with_ids(matrix, np.arange(len(matrix), dtype=np.int64))

    def threads(self, n):
        import faiss

        faiss.omp_set_num_threads(n)

    def query(self, q, k):
        return self.ix.search(q[None], k)[1][0]

    def save(self, path):
        import faiss

        faiss.write_index(self.ix, path)

    def load(self, path, dim):
        import faiss

        self.ix = faiss.read_index(path)
        faiss.downcast_index(self.ix.index).hnsw.efSearch = EF_SEARCH

    def add_one(self, key, v):
        self.ix.add_with_ids(v[None], np.array([key], np.int64))

    def remove_one(self, key):
        self.ix.remove_ids(np.array([key], np.int64))  # HNSW: raises (not implemented)


class FaissIvf(FaissHnsw):
    NLIST, NPROBE = 2048, 24

    def build(self, matrix, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        quant = faiss.IndexFlatL2(matrix.shape[1])
        self.ix = faiss.IndexIVFFlat(quant, matrix.shape[1], self.NLIST)
        self.ix.train(matrix[:: max(1, len(matrix) // (self.NLIST * 50))])
        self.ix.add_with_ids(matrix, np.arange(len(matrix), dtype=np.int64))
        self.ix.nprobe = self.NPROBE

    def load(self, path, dim):
        import faiss

        self.ix = faiss.read_index(path)
        self.ix.nprobe = self.NPROBE


class Usearch(Lib):
    def build(self, matrix, threads):
        from usearch.index import Index

        self.ix = Index(
            ndim=matrix.shape[1], metric="l2sq", dtype="f32", connectivity=M_LINKS,
            expansion_add=EF_BUILD, expansion_search=EF_SEARCH,
        )  # fmt: skip
        self.ix.add(np.arange(len(matrix), dtype=np.uint64), matrix, threads=threads)
        self.nthreads = 1

    def threads(self, n):
        self.nthreads = n

    def query(self, q, k):
        return np.asarray(self.ix.search(q, k, threads=self.nthreads).keys, np.int64)

    def save(self, path):
        self.ix.save(path)

    def load(self, path, dim):
        from usearch.index import Index

        self.ix = Index.restore(path)
        if self.ix is None:
            raise ValueError("not a usearch index")
        self.ix.expansion_search = EF_SEARCH
        self.nthreads = 1

    def add_one(self, key, v):
        self.ix.add(np.uint64(key), v)

    def remove_one(self, key):
        self.ix.remove(np.uint64(key))


LIBS = {"hnswlib": Hnswlib, "faiss-hnsw": FaissHnsw, "faiss-ivf": FaissIvf, "usearch": Usearch}


def pct(t: list[float], q: float) -> float:
    return float(np.percentile(np.array(t) * 1000, q))


def one(name: str, n: int) -> dict:
    _, matrix = synthetic_gallery(n, seed=0)
    queries = probes(matrix)
    truth = exact(matrix, queries, 10)
    lib = LIBS[name]()
    cores = os.cpu_count() or 1
    before = rss_mb()
    start = time.perf_counter()
    lib.build(matrix, cores)
    build_s = time.perf_counter() - start
    grown = rss_mb() - before
    out: dict = {"library": name, "n": n, "build_s": round(build_s, 1), "rss_growth_mb": round(grown)}
    for label, threads in (("1thread", 1), ("default", cores)):
        lib.threads(threads)
        for q in queries[:20]:
            lib.query(q, K)
        times, found = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(lib.query(q, K))
            times.append(time.perf_counter() - t)
        out[f"p50_ms_{label}"] = round(pct(times, 50), 3)
        out[f"p95_ms_{label}"] = round(pct(times, 95), 3)
    lib.threads(1)
    out["recall@1"] = float(np.mean([t[0] in f[:1] for t, f in zip(truth, found, strict=True)]))
    out["recall@10"] = float(np.mean([len(set(t) & set(f[:10])) / 10 for t, f in zip(truth, found, strict=True)]))
    out["top1_in_64"] = float(np.mean([t[0] in f for t, f in zip(truth, found, strict=True)]))
    half = len(queries) // 2
    out["recall@1_mated"] = float(np.mean([t[0] in f[:1] for t, f in zip(truth[:half], found[:half], strict=True)]))
    out["recall@1_strangers"] = float(np.mean([t[0] in f[:1] for t, f in zip(truth[half:], found[half:], strict=True)]))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ix")
        t = time.perf_counter()
        lib.save(path)
        out["save_s"] = round(time.perf_counter() - t, 2)
        out["file_mb"] = round(os.path.getsize(path) / 2**20)
        t = time.perf_counter()
        lib.load(path, matrix.shape[1])
        out["load_s"] = round(time.perf_counter() - t, 2)
    v = queries[0]
    t = time.perf_counter()
    try:
        lib.add_one(n + 5, v)
        out["add_one_ms"] = round((time.perf_counter() - t) * 1000, 3)
    except Exception as exc:
        out["add_one_ms"] = f"fails: {type(exc).__name__}"
    t = time.perf_counter()
    try:
        lib.remove_one(n + 5)
        out["remove_one_ms"] = round((time.perf_counter() - t) * 1000, 3)
    except Exception as exc:
        out["remove_one_ms"] = f"fails: {type(exc).__name__}: {str(exc)[:60]}"
    return out


def damage(name: str, how: str) -> str:
    """Load a damaged 10k index in this process (the caller watches for a crash)."""
    _, matrix = synthetic_gallery(10_000, seed=0)
    lib = LIBS[name]()
    lib.build(matrix, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ix")
        lib.save(path)
        data = bytearray(Path(path).read_bytes())
        if how == "truncated":
            data = data[: len(data) // 2]
        else:
            rng = np.random.default_rng(0)
            at = len(data) // 3
            data[at : at + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        Path(path).write_bytes(bytes(data))
        try:
            lib.load(path, matrix.shape[1])
            lib.query(matrix[0], 10)
        except Exception as exc:
            return f"raises {type(exc).__name__}"
    return "loads silently"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--damage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.n)))
        return
    if args.damage:
        print(json.dumps(damage(args.damage.split(":")[0], args.damage.split(":")[1])))
        return
    rows = []
    for name in args.libs.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--n", str(args.n)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            rows.append({"library": name, "error": run.stderr[-500:]})
            continue
        row = json.loads(run.stdout.strip().splitlines()[-1])
        for how in ("truncated", "overwritten"):
            cmd = [sys.executable, __file__, "--damage", f"{name}:{how}"]
            d = subprocess.run(cmd, capture_output=True, text=True)
            died = f"process dies (rc {d.returncode})"
            row[f"damaged_{how}"] = json.loads(d.stdout.strip().splitlines()[-1]) if d.returncode == 0 else died
        rows.append(row)
        print(json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / f"ann_choice_{args.n}.json").write_text(json.dumps(rows, indent=1))
    keys = [k for k in rows[0] if k != "library"]
    print("\n| library | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for r in rows:
        print(f"| {r['library']} | " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
