"""``facegate evaluate``: measure a face system on a data set, the way biometric evaluations do.

- ``evaluate pairs PAIRS --images DIR``: 1:1 verification on an LFW pair file (View 1
  or View 2) or a facegate pair file: ROC, AUC, EER, k-fold accuracy, FNMR@FMR, FTE;
- ``evaluate identify DIR``: 1:K identification on a folder-per-person set with
  k-fold over each person's photos: rank-1, CMC, open-set DIR@FPIR;
- ``evaluate compare REPORT.json ...``: several runs' ROC curves on one chart;
- ``evaluate make-pairs DIR``: same/different pairs drawn from a folder-per-person set.

Each prints a table and writes ``report.md``, ``report.json`` and PNG plots to ``--out``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from facegate.cli.eval_options import (
    BadInputError,
    RunChoice,
    SystemChoice,
    command_line,
    friendly_errors,
    run_options,
    system_options,
)
from facegate.datasets.folders import LAYOUTS, load_folder
from facegate.datasets.pairs import load_pairs, make_pairs, write_pairs
from facegate.evaluate.metrics import Roc
from facegate.evaluate.plots import (
    SheetPair,
    hardest_pairs,
    pick_for_heatmap,
    plot_cmc,
    plot_distance_matrix,
    plot_pair_sheet,
    plot_roc,
)
from facegate.evaluate.report import Report, format_table
from facegate.evaluate.run import System, evaluate_identification, evaluate_pairs


@click.group(name="evaluate")
def evaluate() -> None:
    """Measure accuracy on a data set: verification pairs or identification folds."""


def person_of(path: str) -> str:
    """The person a pair-file path names: its folder, else its file name before the first dot."""
    parts = Path(path).parts
    return parts[-2] if len(parts) >= 2 else Path(path).name.split(".", 1)[0]


def each_system(system: SystemChoice, report: Report, evaluate_one: Callable[[System], tuple[Any, Any]]) -> list:
    """``evaluate_one`` on every system chosen, each result printed and added to ``report``.

    Returns ``[(result, embedded)]`` in the order of the systems."""
    results = []
    for chosen in system.systems():
        result, embedded = evaluate_one(chosen)
        results.append((result, embedded))
        click.echo(format_table(result.rows(), result.name))
        click.echo()
        report.add(result.name, result.rows())
    return results


@evaluate.command("pairs")
@click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--images",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder the pair file's paths are relative to (LFW: the folder of <Name>/ folders)",
)
@system_options(multiple_models=True)
@click.option("--folds", type=int, default=10, show_default=True, help="k of the k-fold threshold protocol")
@run_options
@click.pass_context
@friendly_errors
def pairs_command(
    ctx: click.Context, pairs_file: Path, images: Path, folds: int, system: SystemChoice, run: RunChoice
) -> None:
    """Verification (1:1) on the pairs of PAIRS_FILE."""
    pairs = load_pairs(pairs_file)
    out = run.out
    report = Report(f"Verification on {pairs_file.name}", command=command_line(ctx))
    results = each_system(
        system, report, lambda chosen: evaluate_pairs(pairs, images, chosen, run.embed, folds=folds, seed=run.seed)
    )

    first, embedded = results[0]
    report.figures.append(plot_roc([(r.name, r.roc) for r, _ in results], out / "roc.png", f"ROC on {pairs_file.name}"))
    threshold = first.kfold.threshold
    sheet = [
        SheetPair(str(images / p.first), str(images / p.second), p.same, float(d))
        for p, d in zip(first.scores.pairs, first.scores.distances, strict=True)
    ]
    report.figures.append(
        plot_pair_sheet(hardest_pairs(sheet, threshold), threshold, out / "pairs.png", f"{first.name}: hardest pairs")
    )
    labels = [person_of(p) for p in embedded.paths]
    chosen = pick_for_heatmap(labels, embedded.ok)
    report.figures.append(
        plot_distance_matrix(
            embedded.vectors[chosen],
            [labels[i] for i in chosen],
            first.system["metric"],
            out / "distances.png",
            threshold=threshold,
            title=f"{first.name}: distances between photos",
        )
    )
    report.notes += [
        "Pairs with an image where no face was found are kept: they count as wrong decisions in accuracy, "
        "as false non-matches when genuine, and never as false matches.",
        "Accuracy threshold: chosen on k-1 folds, tested on the held-out fold; the mean of the thresholds is shown.",
    ]
    report.data = {
        "kind": "verification",
        "dataset": {"pairs_file": str(pairs_file), "images": str(images), "pairs": len(pairs)},
        "results": [r.to_dict() for r, _ in results],
    }
    md, _ = report.write(out)
    click.echo(f"report: {md}")


@evaluate.command("identify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--folds", type=int, default=2, show_default=True, help="k-fold over each person's photos")
@click.option("--people", type=int, default=None, help="only the N people with most photos")
@click.option(
    "--min-photos", type=int, default=None, help="only people with at least this many photos [default: folds]"
)
@click.option(
    "--unknown",
    type=float,
    default=0.5,
    show_default=True,
    help="share of people left out of the gallery as non-mated probes (open set)",
)
@click.option("--layout", type=click.Choice(LAYOUTS.names()), default=None, help="folder layout [default: detect]")
@system_options(multiple_models=True)
@run_options
@click.pass_context
@friendly_errors
def identify_command(
    ctx: click.Context,
    folder: Path,
    folds: int,
    people: int | None,
    min_photos: int | None,
    unknown: float,
    layout: str | None,
    system: SystemChoice,
    run: RunChoice,
) -> None:
    """Identification (1:K) on a folder-per-person set (DIR/<person>/*.jpg, ORL, Yale)."""
    faces = load_folder(folder, layout).select(people=people, min_photos=min_photos or folds)
    if len(faces.people) < 2:
        raise click.ClickException(f"{folder}: fewer than 2 people with at least {min_photos or folds} photos")
    out, seed = run.out, run.seed
    report = Report(f"Identification on {folder.name}", command=command_line(ctx))
    results = each_system(
        system,
        report,
        lambda chosen: evaluate_identification(
            faces, chosen, run.embed, folds=folds, seed=seed, unknown_fraction=unknown
        ),
    )

    first, embedded = results[0]
    report.figures.append(plot_cmc([(r.name, r.cmc) for r, _ in results], out / "cmc.png", f"CMC on {folder.name}"))
    chosen = pick_for_heatmap(faces.labels, embedded.ok)
    # outline what the open-set threshold at the first FPIR target would accept
    found = [p["threshold"] for p in first.open_set if p["threshold"] is not None and np.isfinite(p["threshold"])]
    report.figures.append(
        plot_distance_matrix(
            embedded.vectors[chosen],
            [faces.labels[i] for i in chosen],
            first.system["metric"],
            out / "distances.png",
            threshold=found[0] if found else None,
            title=f"{first.name}: distances between photos",
        )
    )
    report.notes += [
        f"Layout {faces.layout}; each person's photos dealt into {folds} folds (seed {seed}); "
        "each fold in turn is the probe set, the others are enrolled.",
        "A photo without a detected face is a miss as a probe and absent as a template.",
    ]
    report.data = {
        "kind": "identification",
        "dataset": {"folder": str(folder), "layout": faces.layout, "people": len(faces.people), "images": len(faces)},
        "results": [r.to_dict() for r, _ in results],
    }
    md, _ = report.write(out)
    click.echo(f"report: {md}")


@evaluate.command("compare")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("roc.png"), show_default=True)
@click.option("--title", default="ROC", show_default=True)
@friendly_errors
def compare_command(reports: tuple[Path, ...], out: Path, title: str) -> None:
    """Draw the ROC curves of several 'evaluate pairs' reports (report.json) on one chart."""
    curves = []
    for path in reports:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != "verification":
            raise BadInputError(
                f"{path} holds an {data.get('kind')!r} report; compare takes the report.json of "
                "'facegate evaluate pairs'"
            )
        for r in data["results"]:
            s = r["system"]
            name = f"{s['model']}/{s['detector']}/{s['metric']}" + ("+tta" if s.get("tta") else "")
            roc = Roc(np.zeros(len(r["roc"]["fpr"])), np.array(r["roc"]["fpr"]), np.array(r["roc"]["tpr"]))
            curves.append((f"{name} (EER {r['eer']['rate']:.3f})", roc))
            click.echo(f"{name}: accuracy {r['accuracy']['mean']:.4f}, AUC {r['auc']:.4f}, EER {r['eer']['rate']:.4f}")
    click.echo(f"ROC: {plot_roc(curves, out, title)}")


@evaluate.command("make-pairs")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("pairs.tsv"), show_default=True)
@click.option("--genuine", type=int, default=None, help="same-person pairs to draw [default: all]")
@click.option("--impostor", type=int, default=None, help="different-person pairs [default: as many as genuine]")
@click.option("--folds", type=int, default=10, show_default=True, help="stratified folds written with the pairs")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layout", type=click.Choice(LAYOUTS.names()), default=None, help="folder layout [default: detect]")
@friendly_errors
def make_pairs_command(
    folder: Path, out: Path, genuine: int | None, impostor: int | None, folds: int, seed: int, layout: str | None
) -> None:
    """Draw same/different pairs from a folder-per-person set (for 'evaluate pairs OUT --images FOLDER')."""
    faces = load_folder(folder, layout)
    n_impostor = impostor
    if genuine is None and impostor is None:
        n_impostor = sum(n * (n - 1) // 2 for n in faces.counts().values())  # balanced, as LFW
    pairs = make_pairs(faces, n_genuine=genuine, n_impostor=n_impostor, folds=folds, seed=seed)
    write_pairs(pairs, out)
    same = sum(p.same for p in pairs)
    click.echo(
        f"{out}: {same} genuine + {len(pairs) - same} impostor pairs from {len(faces.people)} people ({faces.layout})"
    )
