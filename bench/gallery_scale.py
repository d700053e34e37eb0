"""Search at 10k, 100k and 1M templates: exact search against the in-process index.

Each gallery is a real SQLite gallery (``bench/out/scale/gallery_<n>.sqlite``, built
once and reused) of the default model's templates: LFW View 1 people enrolled from
their first photo (every other person with two or more photos), and synthetic people
drawn to have LFW's distance distribution (``embeddings_synth.py``) up to ``n``
templates. The probes are real photos: the other photos of the enrolled LFW people
(mated) and every photo of the LFW people not enrolled (strangers).

For each size and search (``exact``, ``ann``), in a fresh process (so memory does
not mix):

- open: reading the templates and, for ``ann``, building the index (first open) or
  loading it (later opens; both are reported);
- query p50 / p95 of ``identify_embedding`` (the whole decision: candidates, exact
  fused distances, cohort normalisation, open-set threshold), one probe at a time;
- recall of ``ann`` against ``exact``: recall@1 (the same best person) and recall@10
  (share of exact search's 10 best people that ann's 10 best hold), for plain
  distances and for the default normalised scores (those on probes of test people only:
  :func:`probes`);
- memory: peak RSS of the process minus a process that only imported facegate,
  and the index's files;
- enrol one more: ``add_embeddings`` of a new person with 2 templates, then its removal.

Writes ``bench/out/gallery_scale.json`` and ``bench/out/gallery_scale.png`` (``--out``'s name; latency
and memory against size; pgvector's points too when ``bench/out/pgvector_scale.json``
exists).

    .venv/bin/python bench/gallery_scale.py [--sizes 10000,100000,1000000] [--probes 200]
    .venv/bin/python bench/gallery_scale.py --sizes 100000,1000000 --compare-pages   # 4 KiB against huge pages
    .venv/bin/python bench/gallery_scale.py --sizes 100000,1000000 --compare-projection   # full against projected

The machine this ran on has 2 cores shared with other work: latencies are the median
and 95th percentile of a few hundred probes and move by 20-50% between runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embeddings_synth import LFW, real_faces, synthetic_gallery

OUT = Path(__file__).resolve().parent / "out"
FOLDER = OUT / "scale"
MODEL = "dlib-resnet"


# -- the galleries -----------------------------------------------------------------------
def lfw_split(test_only: bool = False) -> dict[str, np.ndarray]:
    """Which LFW photos are enrolled, mated probes, strangers (every other person with 2+ photos enrolled).

    ``test_only``: probes only of ``pairsDevTest.txt``'s people. The default scores
    normalise against a cohort of ``pairsDevTrain.txt``'s people, so a training person's
    photo as a probe meets itself in the cohort: decisions are measured on test people."""
    from facegate.datasets.lfw import people_images

    real = real_faces()
    labels = real.labels
    counts = np.bincount(labels)
    multi = np.flatnonzero(counts >= 2)
    enrolled_people = multi[::2]
    first = np.r_[True, labels[1:] != labels[:-1]]  # rows are grouped by person
    is_enrolled = np.isin(labels, enrolled_people)
    probe = np.ones(len(labels), bool)
    if test_only:  # real_faces numbers the training file's people first
        n_train = max(people_images(LFW, "pairsDevTrain.txt")[1]) + 1
        probe = labels >= n_train
    return {
        "enrolled": np.flatnonzero(is_enrolled & first),
        "mated": np.flatnonzero(is_enrolled & ~first & probe),
        "strangers": np.flatnonzero(~is_enrolled & probe),
    }


def gallery_path(n: int) -> Path:
    return FOLDER / f"gallery_{n}.sqlite"


def build_gallery(n: int) -> Path:
    """The SQLite gallery of ``n`` templates (made once; the last meta key written marks it complete)."""
    from facegate.gallery import Gallery
    from facegate.gallery.store import NewTemplate

    path = gallery_path(n)
    if path.exists():
        from facegate.gallery.store import GalleryStore

        if GalleryStore.stored_meta(path).get("bench_complete") == "1":
            return path
        for old in path.parent.glob(path.name + "*"):
            old.unlink()
    FOLDER.mkdir(parents=True, exist_ok=True)
    real = real_faces()
    split = lfw_split()
    start = time.perf_counter()
    g = Gallery(path, model_name=MODEL, index="exact")
    store = g.store
    batch = {f"lfw{int(real.labels[i])}": [NewTemplate(real.vectors[i], f"lfw{i}", {})] for i in split["enrolled"]}
    store.add_many(batch)
    owners, matrix = synthetic_gallery(n - len(batch), seed=n, include_real=False)
    bounds = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1], True])
    chunk: dict = {}
    for a, b in itertools.pairwise(bounds):
        chunk[f"s{int(owners[a])}"] = [NewTemplate(matrix[i], f"s{i}", {}) for i in range(a, b)]
        if len(chunk) >= 20_000:
            store.add_many(chunk)
            chunk = {}
    if chunk:
        store.add_many(chunk)
    with store.transaction() as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('bench_complete', '1')")
    store.close()
    print(f"built {path.name}: {n} templates in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def probes(n_each: int, tuning: bool = False, test_only: bool = False) -> tuple[np.ndarray, list[str | None]]:
    """``n_each`` mated probes and ``n_each`` strangers (fixed draw), and who each one is.

    ``tuning``: another ``n_each`` of each, none of them a reported probe: the graph's
    search list (``EF_SEARCH``) is chosen on their sweep, and reported on the others.
    ``test_only``: photos of ``pairsDevTest.txt``'s people only (:func:`lfw_split`), for
    normalised scores: a training person's photo meets itself in the cohort, and its inflated
    cohort spread (median 0.055 against 0.018 for test photos) favours the gallery's people of
    narrow spread. There are 300 such mated probes: half are reported, half tune."""
    real = real_faces()
    split = lfw_split(test_only=test_only)
    rng = np.random.default_rng(0)
    mated, strangers = (rng.permutation(split[kind]) for kind in ("mated", "strangers"))
    n_mated = min(n_each, len(mated) // 2)
    if tuning:
        mated, strangers = mated[n_mated:], strangers[n_each:]
    mated, strangers = mated[:n_mated], strangers[:n_each]
    rows = np.r_[mated, strangers]
    truth = [f"lfw{int(real.labels[i])}" for i in mated] + [None] * len(strangers)
    return real.vectors[rows], truth


# -- one measurement, in its own process ---------------------------------------------------
def rss_mb() -> float:
    """Resident memory of this process now (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def ms(times: list[float]) -> tuple[float, float]:
    t = np.array(times) * 1000
    return round(float(np.percentile(t, 50)), 3), round(float(np.percentile(t, 95)), 3)


def measure(n: int, search: str, n_probes: int, normalise: bool, reuse: bool = False) -> dict:
    from facegate.gallery import Gallery
    from facegate.gallery.ann import header_path, remove_files

    path = gallery_path(n)
    queries, _ = probes(n_probes, test_only=normalise)
    base = rss_mb()
    out: dict = {"templates": n, "search": search, "normalise": normalise, "probes": len(queries)}
    if search == "ann" and not reuse and (not normalise or not header_path(path).exists()):
        remove_files(path)  # the first open of each size builds the graph: its build time is measured
    start = time.perf_counter()
    g = Gallery(path, index=search, normalise=None if normalise else False)
    out["open_s"] = round(time.perf_counter() - start, 2)
    if search == "ann":
        out["graph"] = g.ann.origin
        memory = getattr(g.ann.graph, "memory", None)  # the graph's huge pages (hnsw)
        out["index"] = g.ann.kind
        out["graph_huge_pages_mb"] = round(max(memory.advised, memory.collapsed) / 2**20) if memory else 0
        out["graph_mb"] = round(sum(p.stat().st_size for p in path.parent.glob(path.name + ".ann.*")) / 2**20)
    out["people"] = len(g)
    g.identify_embedding(queries[0])
    times, tops = [], []
    for q in queries:
        t = time.perf_counter()
        r = g.identify_embedding(q, top_k=10)
        times.append(time.perf_counter() - t)
        tops.append([c.name for c in r.candidates])
    out["p50_ms"], out["p95_ms"] = ms(times)
    out["identities"] = [r[0] if r else None for r in tops]
    out["top10"] = tops
    if search == "ann":
        graph_times = []
        for q in queries:
            t = time.perf_counter()
            g.ann.nearest(q, 64)
            graph_times.append(time.perf_counter() - t)
        out["graph_p50_ms"], out["graph_p95_ms"] = ms(graph_times)
        if not normalise:
            out["ef_sweep"] = ef_sweep(g, probes(n_probes, tuning=True)[0])
    out["rss_mb"] = round(rss_mb() - base)
    rng = np.random.default_rng(1)
    v = rng.standard_normal((2, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    t = time.perf_counter()
    g.add_embeddings("bench newcomer", v)
    out["enrol_one_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    g.remove("bench newcomer")
    out["remove_one_s"] = round(time.perf_counter() - t, 3)
    g.close()
    return out


def exact_best(n: int, queries: np.ndarray, normalise: bool) -> list[str]:
    """The name of exact search's best person (every person scored) for each query, in the gallery
    of ``n`` templates with plain or normalised scores: what an index's answers are held against."""
    from facegate.gallery import Gallery

    with Gallery(gallery_path(n), index="exact", normalise=normalise) as every:
        return [every.identify_embedding(q, top_k=1).candidates[0].name for q in queries]


def nearest_templates(ann, ids: np.ndarray, matrix: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The id of each query's exact nearest template among the full templates (``ids``, ``matrix``),
    compared as the graph's metric compares them (unit length where it normalises)."""
    unit = ann._normalised(matrix)
    sq = (unit**2).sum(1)
    return np.array([ids[np.argmin(sq - 2 * unit @ q)] for q in ann._normalised(queries)])


#: the efforts the sweep tries, by index: the share of the lists scanned (ivf), the search list (hnsw)
EFFORTS = {"ivf": (0.05, 0.1, 0.15, 0.2, 0.3), "hnsw": (64, 128, 192, 256, 512)}


def kept_graph(n: int, g, ids: np.ndarray, owners: np.ndarray, matrix: np.ndarray):
    """hnswlib's graph of the gallery of ``n`` templates (``g``, whose store holds ``ids``, ``owners``,
    ``matrix``; plain distances), kept for the side-by-side benches as ``gallery_<n>.sqlite.hnsw.ann.*``
    (the gallery's own files hold its default index): loaded, or built as ``index="hnsw"`` builds it
    (10 minutes at 1M). Returns the graph's ``AnnSearch`` and how it was opened, in how long."""
    from facegate.gallery.ann import AnnSearch

    start = time.perf_counter()
    graph = AnnSearch.open(
        f"{gallery_path(n)}.hnsw", g.store.identity(), g._people_version, ids, owners, matrix, False, "hnsw"
    )
    return graph, {"graph": graph.origin, "graph_open_s": round(time.perf_counter() - start, 1)}


def ef_sweep(g, queries: np.ndarray) -> list[dict]:
    """The index alone, on the tuning probes, for several efforts (:data:`EFFORTS`; 64 templates
    asked for, as the gallery does; an hnsw list shorter than 64 is 64): how often the exact nearest
    template is among the 64 it finds (``nearest_found``: the gallery scores its owner exactly,
    so it is then the answer; the graph's own order is on projected templates and its first
    answer need not be the nearest), how often the exact nearest person (plain distances) owns
    one of the 100 templates found (``person_recall@1``: the candidates of a top-10
    identification), and its time."""
    from facegate.gallery.ann import candidate_count

    ann = g.ann
    ids, _, matrix, _ = g.store.load_templates()  # the full templates (the graph may hold projected ones)
    nearest = nearest_templates(ann, ids, matrix, queries)
    index = g._index
    person = np.array([index.people[np.argmin(index.person_distances(q))] for q in queries])
    rows = []
    for ef in EFFORTS[ann.kind]:
        times, first, held = [], [], []
        for q, who, nearest_template in zip(queries, person, nearest, strict=True):
            t = time.perf_counter()
            found = ann.nearest(q, 64, ef)
            times.append(time.perf_counter() - t)
            first.append(nearest_template in found)
            held.append(who in ann.owners[np.searchsorted(ann.ids, ann.nearest(q, candidate_count(10), ef))])
        p50, p95 = ms(times)
        rows.append(
            {
                "effort": ef,
                "p50_ms": p50,
                "p95_ms": p95,
                "nearest_found": float(np.mean(first)),
                "person_recall@1": float(np.mean(held)),
            }
        )
    return rows


def _found(sweep: dict) -> float:
    """A sweep row's share of probes whose exact nearest template the graph found (rows written before
    projections have ``recall@1``: the graph's first answer, which was then the same thing or less)."""
    return sweep.get("nearest_found", sweep.get("recall@1", float("nan")))


def compare_pages(n: int, n_probes: int) -> dict:
    """The saved graph of size ``n`` loaded twice in one process, once on 4 KiB pages and once
    on huge pages (as the gallery loads it), and searched alternately with the tuning probes
    at the gallery's list and half of it: p50 of each and the median of the per-probe ratios
    (paired, so the machine's noise mostly cancels)."""
    import hnswlib

    from facegate.gallery.ann import ef_search, header_path
    from facegate.gallery.hugepages import huge_pages
    from facegate.gallery.projection import Projection

    path = gallery_path(n)
    header = json.loads(header_path(path).read_text())
    if not header["library"].startswith("hnswlib"):
        raise SystemExit(f"no hnswlib graph beside {path.name}: open it once with index='hnsw' (10 minutes at 1M)")
    graph_file = str(path.parent / header["graph"])
    dim = header.get("graph_dim", header["dim"])
    huge = hnswlib.Index(space="l2", dim=dim)
    with huge_pages(collapse=True) as advice:  # first: a later plain block cannot merge into its mapping
        huge.load_index(graph_file)
    plain = hnswlib.Index(space="l2", dim=dim)
    plain.load_index(graph_file)
    queries = probes(n_probes, tuning=True)[0].astype(np.float32)
    with np.load(path.parent / header["ids"]) as saved:
        projection = Projection.from_arrays(saved)
    if projection is not None:
        queries = projection(queries)
    out: dict = {"templates": n, "huge_pages_mb": round(advice.collapsed / 2**20), "lists": []}
    for ef in (ef_search(header["templates"]) // 2, ef_search(header["templates"])):
        times: dict[str, list[float]] = {"plain": [], "huge": []}
        for i, q in enumerate(queries):
            for name, graph in sorted({"plain": plain, "huge": huge}.items(), reverse=bool(i % 2)):
                graph.set_ef(ef)
                t = time.perf_counter()
                graph.knn_query(q[None], k=64, num_threads=1)
                times[name].append(time.perf_counter() - t)
        ratio = np.array(times["plain"]) / np.array(times["huge"])
        out["lists"].append(
            {
                "ef": ef,
                "plain_p50_ms": ms(times["plain"])[0],
                "huge_p50_ms": ms(times["huge"])[0],
                "speedup": round(float(np.median(ratio)), 2),
            }
        )
    return out


def compare_projection(n: int, n_probes: int) -> dict:
    """The gallery's graph (on projected templates, ``gallery/projection.py``) against one built on
    the full templates from the same store (kept as ``gallery_<n>.sqlite.full.ann.*``; built the
    first time, its build time reported), searched alternately with the tuning probes at the
    gallery's list and half of it: p50 of each, the median of the per-probe ratios, and how often
    the exact nearest template is among the 64 templates each finds."""
    from facegate.gallery import Gallery, projection
    from facegate.gallery.ann import AnnSearch, ef_search

    g = Gallery(gallery_path(n), index="hnsw", normalise=False)
    if g.ann.projection is None:
        raise SystemExit(f"the graph beside {gallery_path(n).name} holds full templates: run without --reuse-graph")
    ids, owners, matrix, _ = g.store.load_templates()
    keep = projection.MIN_TEMPLATES
    projection.MIN_TEMPLATES = 2**62  # a graph on the full templates, as before projections
    start = time.perf_counter()
    try:
        full = AnnSearch.open(
            f"{gallery_path(n)}.full",
            g.store.identity(),
            g._people_version,
            ids,
            owners,
            matrix,
            g.ann.normalise,
            "hnsw",
        )
    finally:
        projection.MIN_TEMPLATES = keep
    built_s = time.perf_counter() - start if full.origin == "built" else None
    graphs = {"full": full, "projected": g.ann}
    queries = probes(n_probes, tuning=True)[0].astype(np.float32)
    nearest = nearest_templates(g.ann, ids, matrix, queries)
    out: dict = {"templates": n, "graph_dim": g.ann.graph_dim, "full_build_s": built_s, "lists": []}
    for ef in (ef_search(len(ids)) // 2, ef_search(len(ids))):
        times: dict[str, list[float]] = {name: [] for name in graphs}
        found: dict[str, list[bool]] = {name: [] for name in graphs}
        for i, (q, best) in enumerate(zip(queries, nearest, strict=True)):
            for name, ann in sorted(graphs.items(), reverse=bool(i % 2)):
                t = time.perf_counter()
                got = ann.nearest(q, 64, ef)
                times[name].append(time.perf_counter() - t)
                found[name].append(best in got)
        ratio = np.array(times["full"]) / np.array(times["projected"])
        out["lists"].append(
            {
                "ef": ef,
                **{f"{name}_p50_ms": ms(times[name])[0] for name in graphs},
                **{f"{name}_found": float(np.mean(found[name])) for name in graphs},
                "speedup": round(float(np.median(ratio)), 2),
            }
        )
    g.close()
    return out


def prepare(n: int) -> dict:
    """Open the gallery with the default scores once: every person's cohort statistics are
    computed (the first time) and kept with the graph when it closes."""
    from facegate.gallery import Gallery

    start = time.perf_counter()
    g = Gallery(gallery_path(n), index="ann")
    opened = time.perf_counter() - start
    g.close()
    return {"stats_s": round(opened, 1), "close_s": round(time.perf_counter() - start - opened, 1)}


def child(n: int, search: str, n_probes: int, normalise: bool, reuse: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", f"{n}:{search}:{int(normalise)}", "--probes", str(n_probes)]
    cmd += ["--reuse-graph"] if reuse else []
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def recall(exact: dict, approx: dict) -> tuple[float, float]:
    at1 = np.mean([a[:1] == b[:1] for a, b in zip(exact["top10"], approx["top10"], strict=True)])
    at10 = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact["top10"], approx["top10"], strict=True)])
    return round(float(at1), 4), round(float(at10), 4)


def merged(rows: list[dict], new: list[dict]) -> list[dict]:
    """``rows`` with ``new`` rows replacing those of the same size, search and scores."""
    key = lambda r: (r["templates"], r["search"], r["normalise"])  # noqa: E731
    replaced = {key(r) for r in new}
    return [r for r in rows if key(r) not in replaced] + list(new)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    mem = ax.twinx()
    for search, colour in (("exact", "tab:red"), ("ann", "tab:blue")):
        pts = sorted((r["templates"], r["p50_ms"], r["rss_mb"]) for r in rows if r["search"] == search)
        if pts:
            x, lat, rss = zip(*pts, strict=True)
            ax.plot(x, lat, "o-", color=colour, label=f"{search}: p50 latency")
            mem.plot(x, rss, "s--", color=colour, alpha=0.5, label=f"{search}: memory")
    pg = OUT / "pgvector_scale.json"
    if pg.exists():  # bench/pgvector_scale.py, the store's own index: at each size, the fastest search list
        # with recall@1 >= 0.99, else the one with the best recall
        from pgvector_scale import _index

        from facegate.gallery.store_postgres import HNSW_EF_CONSTRUCTION, HNSW_M

        store_index = {"kind": "hnsw", "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
        try:
            pts = []
            for r in json.loads(pg.read_text())["results"]:
                if _index(r) != store_index:
                    continue
                good = [x for x in r["searches"] if x["recall_at_1"] >= 0.99]
                best = (
                    min(good, key=lambda x: x["p50_ms"]) if good else max(r["searches"], key=lambda x: x["recall_at_1"])
                )
                pts.append((r["templates"], best["p50_ms"]))
            x, lat = zip(*sorted(pts), strict=True)
            label = f"pgvector (HNSW m {HNSW_M}): p50, recall@1 0.99 or its best"
            ax.plot(x, lat, "^-", color="tab:green", label=label)
        except (ValueError, KeyError, TypeError):
            pass
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("templates in the gallery")
    ax.set_ylabel("identify one probe, p50 (ms; plain distances)")
    mem.set_ylabel("memory of the searching process (MiB)")
    lines = ax.get_legend_handles_labels()
    more = mem.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    ax.set_title("Gallery search against size (default model, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _paired_runs(kind: str, sizes: str, n_probes: int) -> list[tuple[int, dict]]:
    """A paired comparison (``pages``, ``projection``) of each size, each in a fresh process."""
    out = []
    for n in [int(x) for x in sizes.split(",") if x]:
        cmd = [sys.executable, __file__, "--child", f"{n}:{kind}:0", "--probes", str(n_probes)]
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append((n, json.loads(run.stdout.splitlines()[-1])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers")
    ap.add_argument("--out", default="gallery_scale.json", help="results file under bench/out (rows merged by size)")
    ap.add_argument("--merge", nargs="*", default=[], help="more results files whose rows to take (later wins)")
    ap.add_argument(
        "--reuse-graph",
        action="store_true",
        help="measure with the graphs already beside the galleries (build times kept from the run that built them)",
    )
    ap.add_argument(
        "--compare-pages",
        action="store_true",
        help="only compare the saved graphs' search on 4 KiB pages and on huge pages (paired, one process per size)",
    )
    ap.add_argument(
        "--compare-projection",
        action="store_true",
        help="only compare the gallery's graph (projected templates) with one on the full templates (paired)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compare_projection:
        print("| templates | list | full: p50 ms / nearest found | projected: p50 ms / nearest found | speed-up |")
        print("|---:|---:|---:|---:|---:|")
        for n, r in _paired_runs("projection", args.sizes, args.probes):
            print(f"<!-- {n:,}: {r['graph_dim']} coordinates; full graph built in {r['full_build_s']} s -->")
            for e in r["lists"]:
                print(
                    f"| {n:,} | {e['ef']} | {e['full_p50_ms']} / {e['full_found']:.3f} "
                    f"| {e['projected_p50_ms']} / {e['projected_found']:.3f} | {e['speedup']}x |"
                )
        return
    if args.compare_pages:
        print("| templates | list | 4 KiB pages p50 ms | huge pages p50 ms | speed-up (median of paired ratios) |")
        print("|---:|---:|---:|---:|---:|")
        for n, r in _paired_runs("pages", args.sizes, args.probes):
            for e in r["lists"]:
                print(f"| {n:,} | {e['ef']} | {e['plain_p50_ms']} | {e['huge_p50_ms']} | {e['speedup']}x |")
        return
    if args.child:
        n, search, normalise = args.child.split(":")
        if search == "prepare":
            print(json.dumps(prepare(int(n))))
        elif search == "pages":
            print(json.dumps(compare_pages(int(n), args.probes)))
        elif search == "projection":
            print(json.dumps(compare_projection(int(n), args.probes)))
        else:
            print(json.dumps(measure(int(n), search, args.probes, normalise == "1", args.reuse_graph)))
        return
    OUT.mkdir(exist_ok=True)
    rows: list[dict] = []
    for name in [args.out, *args.merge]:
        if (OUT / name).exists():
            rows = merged(rows, json.loads((OUT / name).read_text()))
    earlier = {(r["templates"], r["search"], r["normalise"]): r for r in rows}
    for n in [int(s) for s in args.sizes.split(",") if s]:
        build_gallery(n)
        runs = {}
        prepared = {}
        for search in ("ann", "exact"):  # ann first: its first open builds the graph
            runs[search, False] = child(n, search, args.probes, False, args.reuse_graph)
            if search == "ann":  # the cohort statistics of every person, computed once and kept with the graph
                prepared = child(n, "prepare", args.probes, True)
            runs[search, True] = child(n, search, args.probes, True, args.reuse_graph)
        first_open = runs["ann", False]
        for (search, normalise), r in runs.items():
            row = {k: v for k, v in r.items() if k not in ("top10", "identities")}
            if search == "ann" and ("exact", normalise) in runs:
                row["recall@1"], row["recall@10"] = recall(runs["exact", normalise], r)
            if search == "ann":
                before = earlier.get((n, search, normalise), {})  # --reuse-graph: the build was measured then
                built = first_open["graph"] == "built"
                row["build_s"] = first_open["open_s"] if built else before.get("build_s")
                row["stats_s"] = prepared.get("stats_s") if built else before.get("stats_s")
                row["load_s"] = runs["ann", True]["open_s"]
            rows = merged(rows, [row])
            print(json.dumps(row), flush=True)
        (OUT / args.out).write_text(json.dumps(rows, indent=1))
    rows.sort(key=lambda r: (r["templates"], r["search"], r["normalise"]))
    (OUT / args.out).write_text(json.dumps(rows, indent=1))
    plot([r for r in rows if not r["normalise"]] or rows, (OUT / args.out).with_suffix(".png"))  # beside its rows
    header = [
        "templates", "search", "scores", "p50 ms", "p95 ms", "graph p50 ms", "recall@1", "recall@10",
        "open s", "build s", "stats s", "memory MiB", "enrol one s",
    ]  # fmt: skip
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for r in rows:
        cells = [
            f"{r['templates']:,}",
            r["search"],
            "normalised" if r["normalise"] else "distance",
            r["p50_ms"],
            r["p95_ms"],
            r.get("graph_p50_ms", "-"),
            r.get("recall@1", "-"),
            r.get("recall@10", "-"),
            r["open_s"],
            r.get("build_s") or "-",
            r.get("stats_s") or "-",
            r["rss_mb"],
            r["enrol_one_s"],
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    sweeps = [r for r in rows if r.get("ef_sweep")]
    if sweeps:
        print("\nThe index alone: the exact nearest template is among the 64 it finds / the exact nearest person")
        print("owns one of the 100 templates it finds (p50 ms of 64 asked)")
        print("\n| templates | " + " | ".join(f"{e.get('effort', e.get('ef'))}" for e in sweeps[0]["ef_sweep"]) + " |")
        print("|---:|" + "---:|" * len(sweeps[0]["ef_sweep"]))
        for r in sweeps:
            cells = [
                f"{_found(e):.3f} / {e.get('person_recall@1', float('nan')):.3f} ({e['p50_ms']} ms)"
                for e in r["ef_sweep"]
            ]
            print(f"| {r['templates']:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
