"""The evaluation figures of the closing note, produced through the ``facegate evaluate`` CLI.

Runs, each writing report.md / report.json / plots under ``--out``:

1. LFW View 1 pairsDevTest, one run per system: dlib-resnet with HOG, dlib-resnet
   with the CNN detector (about 1 s per image on a CPU: ``--skip-cnn`` leaves it
   out), and the raw-pixels baseline; then one ROC chart of all of them;
2. ORL (40 people; with HOG, HOG falling back to the CNN, and no detection at all
   since ORL is pre-cropped) and
   Yale (15 people) identification, 2-fold over each person's photos;
3. the 5 people with most photos in LFW View 1's images folder, 2-fold;
4. calibration (``--no-save``): the threshold for FMR 1e-3 on ORL's generated pairs
   and for FMR 1e-2 on LFW DevTest (500 impostor pairs cannot measure 1e-3).

Embeddings are cached (``--cache``), so a rerun is instant. A summary table of the
headline figures is written to ``OUT/summary.md``, with the exact commands.

    nice -n 5 .venv/bin/python bench/evaluate_report.py --out runs/bench [--skip-cnn] [--tta on|off]
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import click

from facegate.cli.calibrate import calibrate
from facegate.cli.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def run(args: list[str], log: list[str], group: click.Command = evaluate) -> float:
    """Run ``facegate evaluate ARGS`` (or another command) in-process, note it and return its wall time."""
    command = f"facegate {group.name} " + " ".join(shlex.quote(a) for a in args)
    print(f"\n$ {command}", flush=True)
    start = time.perf_counter()
    group.main(args, standalone_mode=False)
    seconds = time.perf_counter() - start
    log.append(f"{command}   # {seconds:.0f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache [default: facegate's]")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-cnn", action="store_true", help="leave out the slow CNN-detector run")
    parser.add_argument(
        "--tta", choices=["default", "on", "off"], default="default", help="mirror-image averaging [pipeline default]"
    )
    opts = parser.parse_args()

    common = ["--progress"] + (["--cache", str(opts.cache)] if opts.cache else [])
    common += {"default": [], "on": ["--tta"], "off": ["--no-tta"]}[opts.tta]
    common += ["--workers", str(opts.workers)] if opts.workers else []
    lfw = opts.data / "lfw"
    log: list[str] = []
    systems = [("dlib-resnet", "hog"), ("pixels", "hog")] + ([] if opts.skip_cnn else [("dlib-resnet", "cnn")])
    lfw_reports = []
    for model, detector in systems:
        out = opts.out / f"lfw-devtest-{model}-{detector}"
        pairs = ["pairs", str(lfw / "pairsDevTest.txt"), "--images", str(lfw / "images")]
        run([*pairs, "--model", model, "--detector", detector, "--out", str(out), *common], log)
        lfw_reports.append(out / "report.json")
    roc = opts.out / "lfw-devtest-roc.png"
    run(["compare", *map(str, lfw_reports), "--out", str(roc), "--title", "LFW View 1 pairsDevTest"], log)

    identify = {
        "orl": ["identify", str(opts.data / "orl"), "--folds", "2"],
        "orl-skip": ["identify", str(opts.data / "orl"), "--folds", "2", "--detector", "skip"],
        "orl-hogcnn": ["identify", str(opts.data / "orl"), "--folds", "2", "--detector", "hog+cnn"],
        "yale": ["identify", str(opts.data / "yale"), "--folds", "2"],
        "lfw-top5": ["identify", str(lfw / "images"), "--folds", "2", "--people", "5"],
    }
    for name, args in identify.items():
        run([*args, "--out", str(opts.out / f"{name}-identify"), *common], log)

    calibrations = {
        "orl": [str(opts.data / "orl"), "--target-fmr", "1e-3"],
        "lfw-devtest": [str(lfw / "pairsDevTest.txt"), "--images", str(lfw / "images"), "--target-fmr", "1e-2"],
    }
    for name, args in calibrations.items():
        run([*args, "--no-save", "--out", str(opts.out / f"{name}-calibrate"), *common], log, calibrate)

    identified = [opts.out / f"{n}-identify" / "report.json" for n in identify]
    calibrated = [opts.out / f"{n}-calibrate" / "report.json" for n in calibrations]
    write_summary(opts.out, lfw_reports, identified, calibrated, log)


def write_summary(
    out: Path, verification: list[Path], identification: list[Path], calibration: list[Path], log: list[str]
) -> Path:
    lines = ["# facegate evaluation figures", "", "## LFW View 1 pairsDevTest (500 + 500 pairs)", ""]
    lines += ["| system | accuracy (10-fold) | AUC | EER | FNMR@FMR=1e-2 | FTE |", "|---|---|---|---|---|---|"]
    for path in verification:
        for r in json.loads(path.read_text())["results"]:
            s, acc, fte = r["system"], r["accuracy"], r["failure_to_enrol"]
            fnmr = next(p for p in r["fnmr_at_fmr"] if p["target_fmr"] == 0.01)["fnmr"]
            lines.append(
                f"| {s['model']}/{s['detector']}/{s['metric']}{'+tta' if s['tta'] else ''} "
                f"| {acc['mean']:.4f} ± {acc['std']:.4f} "
                f"| {r['auc']:.4f} | {r['eer']['rate']:.4f} | {_num(fnmr)} | {fte['images']} ({fte['rate']:.2%}) |"
            )
    lines += ["", "![ROC](lfw-devtest-roc.png)", "", "## Identification, 2-fold over each person's photos", ""]
    lines += ["| set | system | people / images | rank-1 | DIR@FPIR=0.1 | FTE |", "|---|---|---|---|---|---|"]
    for path in identification:
        data = json.loads(path.read_text())
        for r in data["results"]:
            s = r["system"]
            system = f"{s['model']}/{s['detector']}" + ("+tta" if s["tta"] else "")
            point = next((p for p in r["open_set"]["points"] if p["target_fpir"] == 0.1), {"dir": None})
            lines.append(
                f"| {path.parent.name.removesuffix('-identify')} | {system} "
                f"| {r['people']} / {r['images']} | {r['rank1']:.4f} | {_num(point['dir'])} "
                f"| {r['failure_to_enrol']['images']} |"
            )
    lines += ["", "## Calibration (threshold for a target FMR, not saved)", ""]
    lines += [
        "| set | target FMR | threshold | measured FMR | measured FNMR | impostor pairs |",
        "|---|---|---|---|---|---|",
    ]
    for path in calibration:
        c = json.loads(path.read_text())["calibration"]
        lines.append(
            f"| {path.parent.name.removesuffix('-calibrate')} | {c['target_fmr']:g} | {c['threshold']:.4f} "
            f"| {c['fmr']:.5f} | {c['fnmr']:.4f} | {c['n_impostor']} |"
        )
    lines += ["", "## Commands", "", "```", *log, "```", ""]
    path = out / "summary.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"\nsummary: {path}")
    return path


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


if __name__ == "__main__":
    main()
