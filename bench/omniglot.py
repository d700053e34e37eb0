"""Benchmark one-shot methods on Omniglot: train each on the same CPU budget, evaluate
with the papers' protocols, print a Markdown table.

    python bench/omniglot.py --data ../shared/data/omniglot --out runs/omniglot \\
        --methods siamese-bce,triplet,best --budget 300 --suffix=-5min
    python bench/omniglot.py --data ../shared/data/omniglot --out runs/omniglot \\
        --methods best --budget 1800 --suffix=-30min --tta

Each method trains into ``OUT/<name>/`` (``--reuse`` skips training when its
``best.pt`` exists), is evaluated into ``OUT/<name>/eval/``, and the table of every
evaluated method found under ``OUT`` is written to ``OUT/bench.md`` and printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facegate.learn.oneshot_report import evaluate_checkpoint
from facegate.learn.training.omniglot import OmniglotTrainConfig, train_omniglot

#: the methods compared, each on the same compact CNN (130k parameters) at 28x28, ink
#: scaled to 80% of the frame and centred, rotated classes, 3 background alphabets held
#: out for validation
NET = dict(channels=(32, 64, 64, 128), input_size=28, fit=0.8, rotations=True, val_alphabets=3, val_episodes=1000)
PRESETS: dict[str, dict[str, Any]] = {
    "siamese-bce": dict(method="siamese-bce", batch_size=128, steps_per_epoch=200, lr=1e-3, within_alphabet=0.0, **NET),
    "triplet": dict(
        method="triplet", batch_size=128, per_class=4, steps_per_epoch=200, lr=1e-3, within_alphabet=0.3, **NET
    ),
    "contrastive": dict(method="contrastive", batch_size=128, steps_per_epoch=200, lr=1e-3, within_alphabet=0.0, **NET),
    "proto": dict(
        method="proto", n_way=60, k_shot=1, n_query=5, steps_per_epoch=100, lr=2e-3, within_alphabet=0.6, **NET
    ),
    # the best: prototypical loss on P×K batches, every image a 1-shot query, small affine distortions
    "proto-loo": dict(
        method="proto-loo",
        batch_size=128,
        per_class=2,
        steps_per_epoch=200,
        lr=2e-3,
        within_alphabet=0.6,
        affine=True,
        **NET,
    ),
    # the same without the distortions
    "proto-loo-noaffine": dict(
        method="proto-loo", batch_size=128, per_class=2, steps_per_epoch=200, lr=2e-3, within_alphabet=0.6, **NET
    ),
}
#: ``--methods best`` trains this one
BEST = "proto-loo"


def _row(name: str, report: dict[str, Any]) -> str:
    eps = {(e["n_way"], e["k_shot"]): e for e in report["episodes"]}
    within = {e["k_shot"]: e for e in report.get("episodes_within_alphabet", [])}
    tr = report.get("training") or {}
    minutes = (tr.get("wall_seconds") or tr.get("train_seconds") or 0) / 60
    cpu_minutes = (tr.get("cpu_seconds") or 0) / 60

    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    def ep(n: int, k: int) -> str:
        e = eps[(n, k)]
        return f"{pct(e['accuracy'])} ± {pct(e['ci95'])}"

    p = report["pairs"]
    return (
        f"| {name}{' (TTA)' if report.get('tta') else ''} | {report['method']} | {report['parameters']:,} | "
        f"{minutes:.1f} | {cpu_minutes:.1f} | {tr.get('steps')} | "
        f"{pct(p['accuracy'])} | {pct(p['eer'])} | {ep(5, 1)} | {ep(5, 5)} | {ep(20, 1)} | {ep(20, 5)} | "
        f"{pct(within[1]['accuracy']) if 1 in within else '–'} | {pct(report['official_runs']['accuracy'])} | "
        f"{pct(report['drawers']['prototype'])} |"
    )


COLUMNS = (
    "run", "method", "parameters", "run wall min", "train CPU min", "steps", "pairs acc %", "EER %",
    "5-way 1-shot", "5-way 5-shot", "20-way 1-shot", "20-way 5-shot", "20-way 1-shot within alphabet",
    "20 official runs %", "drawers 11-20 %",
)  # fmt: skip
HEADER = "| " + " | ".join(COLUMNS) + " |\n|---|---|" + "---:|" * (len(COLUMNS) - 2)


def table(out: Path) -> str:
    rows = []
    for report_path in sorted(out.glob("*/eval*/report.json")):
        run_dir = report_path.parent.parent
        report = json.loads(report_path.read_text())
        log = run_dir / "log.jsonl"
        if log.is_file():  # the whole run, not just up to the best checkpoint
            records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            if records:
                training = report.setdefault("training", {})
                training["wall_seconds"] = records[-1].get("wall_seconds")
                training["cpu_seconds"] = records[-1].get("cpu_seconds")
                training["train_seconds"] = records[-1].get("train_seconds")
                training["steps"] = records[-1].get("step")
        rows.append(_row(run_dir.name, report))
    return HEADER + "\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder holding the Omniglot zips")
    ap.add_argument("--out", default="runs/omniglot")
    ap.add_argument(
        "--methods", default="siamese-bce,triplet,best", help=f"comma-separated, of {sorted(PRESETS)} or best"
    )
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds per method")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--reuse", action="store_true", help="skip training when OUT/<name>/best.pt exists")
    ap.add_argument("--suffix", default="", help="appended to each run's folder name")
    ap.add_argument("--tta", action="store_true", help="evaluate with test-time augmentation (1-pixel shifts)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    for name in filter(None, args.methods.split(",")):
        name = BEST if name == "best" else name
        if name not in PRESETS:
            ap.error(f"unknown method {name!r}; choose from {sorted(PRESETS)}")
        run_dir = out / f"{name}{args.suffix}"
        best = run_dir / "best.pt"
        if not (args.reuse and best.is_file()):
            cfg = OmniglotTrainConfig(
                data_root=args.data,
                seed=args.seed,
                epochs=100_000,
                time_budget=args.budget,
                threads=args.threads,
                **PRESETS[name],
            )
            print(f"training {name} for {args.budget:.0f}s -> {run_dir}", file=sys.stderr, flush=True)
            train_omniglot(cfg, run_dir, progress=False)
        print(f"evaluating {best}", file=sys.stderr, flush=True)
        evaluate_checkpoint(
            best,
            run_dir / ("eval-tta" if args.tta else "eval"),
            args.data,
            episodes=args.episodes,
            threads=args.threads,
            tta=args.tta,
        )
    text = table(out)
    (out / "bench.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
