"""``facegate calibrate``: a threshold with a stated false-match rate, saved for verify and Gallery.

SOURCE is either an LFW-style pair file (with ``--images``) or a folder-per-person
set, from which every same-person pair and up to ``--max-impostors``
different-person pairs are drawn. The threshold is the largest whose measured FMR
on those pairs stays at or below ``--target-fmr``; it is written to the user
threshold file (``$FACEGATE_THRESHOLDS``) that ``verify`` and ``Gallery`` read.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from facegate.cli.eval_options import (
    RunChoice,
    SystemChoice,
    command_line,
    friendly_errors,
    run_options,
    system_options,
)
from facegate.datasets.folders import load_folder
from facegate.datasets.lfw import pair_images
from facegate.datasets.pairs import load_pairs, make_pairs
from facegate.decisions import DEFAULT_FMR, DEFAULT_FUSION
from facegate.distances import METRICS
from facegate.evaluate.calibration import calibrate_threshold, pair_curve, save_calibration
from facegate.evaluate.curves import GALLERY_SIZES, Scorer, gallery_effect, template_effect
from facegate.evaluate.metrics import roc_curve
from facegate.evaluate.plots import plot_roc
from facegate.evaluate.report import Report, format_table
from facegate.evaluate.run import embed
from facegate.evaluate.verification import score_pairs


@click.command(name="calibrate")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="images folder, when SOURCE is a pair file",
)
@click.option("--target-fmr", type=float, default=1e-3, show_default=True, help="false-match rate to allow")
@click.option(
    "--max-impostors",
    type=int,
    default=200_000,
    show_default=True,
    help="different-person pairs drawn from a folder set",
)
@click.option("--save/--no-save", default=True, show_default=True, help="write the threshold to the user file")
@system_options(multiple_models=False)
@run_options(report=None)
@click.pass_context
@friendly_errors
def calibrate(
    ctx: click.Context,
    source: Path,
    images: Path | None,
    target_fmr: float,
    max_impostors: int,
    save: bool,
    system: SystemChoice,
    run: RunChoice,
) -> None:
    """Pick the threshold for a target FMR on development data SOURCE and save it."""
    out, seed, options = run.out, run.seed, run.embed
    if source.is_dir():
        faces = load_folder(source)
        pairs = make_pairs(faces, n_genuine=None, n_impostor=max_impostors, folds=1, seed=seed)
        root, kind = faces.root, f"folder set ({faces.layout}, {len(faces.people)} people, {len(faces)} photos)"
    else:
        if images is None:
            raise click.UsageError("a pair file needs --images DIR")
        pairs = load_pairs(source)
        root, kind = images, "pair file"
    [system] = system.systems()  # the one system under test (its names checked)
    files = faces.files() if source.is_dir() else [str(Path(root) / p) for p in pair_images(pairs)]
    embedded = embed(files, system, options)  # a folder set's every photo, for its template effects
    scores = score_pairs(pairs, root, embedded, system.metric)
    result = calibrate_threshold(scores.distances, scores.labels, target_fmr)

    rows = [("system", system.name), ("development set", f"{source} ({kind})"), *result.rows()]
    rows.append(("failure to enrol", f"{embedded.n_failed} of {len(embedded.paths)} images"))
    click.echo(format_table(rows, "calibration"))
    if save:
        saved = []
        labelled = _labelled(faces, embedded) if source.is_dir() else None
        for name in METRICS.names():  # every metric, so no metric keeps a threshold of other data
            other = scores if name == system.metric else score_pairs(pairs, root, embedded, name)
            curve = pair_curve(other.distances, other.labels, calibrated_on=str(source), detector=system.detector)
            found = result if name == system.metric else calibrate_threshold(other.distances, other.labels, target_fmr)
            where = save_calibration(
                system.model,
                name,
                found,
                dataset=str(source),
                curve=curve,
                effects=None if labelled is None else measure_effects(*labelled, name, curve),
                calibrated_on=str(source),
                detector=system.detector,
                tta=system.tta,
            )
            saved.append(f"{name} {found.threshold:.4f}")
        rows.append(("saved to", str(where)))
        click.echo(
            f"saved: {system.model} thresholds at FMR {target_fmr:g} ({', '.join(saved)}) and their curves -> {where}\n"
            f"verify and the gallery now decide with them; delete {where} to go back to facegate's calibration"
        )
    if out is None:
        return
    report = Report(f"Calibration on {source.name}", command=command_line(ctx))
    report.add("calibration", rows)
    roc = roc_curve(scores.distances, scores.labels)
    report.figures.append(plot_roc([(system.name, roc)], out / "roc.png", f"ROC on {source.name}"))
    report.data = {"kind": "calibration", "system": system.to_dict(), "calibration": result.to_dict()}
    md, _ = report.write(out)
    click.echo(f"report: {md}")


def _labelled(faces, embedded) -> tuple[np.ndarray, np.ndarray]:
    """The embedded photos of a folder set and their people, failures left out."""
    where = embedded.index()
    rows = [(where[str(Path(faces.root) / p)], label) for p, label in zip(faces.paths, faces.labels, strict=True)]
    rows = [(i, label) for i, label in rows if embedded.ok[i]]
    return embedded.vectors[[i for i, _ in rows]], np.array([label for _, label in rows])


def measure_effects(vectors: np.ndarray, labels: np.ndarray, metric: str, curve) -> dict[str, dict[str, float]]:
    """The template and gallery effects of the operator's own people (see evaluate.curves)."""
    scorer = Scorer(metric)
    t = curve.threshold_for(max(DEFAULT_FMR, curve.min_fmr * 10))
    people = len(np.unique(labels))
    return {
        "template_effect": template_effect(vectors, labels, scorer, DEFAULT_FUSION, t, curve.fmr_at(t)),
        "gallery_effect": gallery_effect(
            vectors, labels, scorer, curve, sizes=[n for n in GALLERY_SIZES if n < people - 10]
        ),
    }
