"""The everyday commands: enroll people, then verify and identify them."""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from facegate.cli.live_check import live_options, live_verify
from facegate.cli.output import EXIT_NO, emit, errors_to_exit, json_option
from facegate.datasets.folders import image_files
from facegate.decisions import DEFAULT_FMR, DEFAULT_FPIR
from facegate.detection import DETECTORS
from facegate.distances import METRICS
from facegate.errors import GalleryError, UnknownNameError
from facegate.gallery import Gallery
from facegate.gallery.backends import is_url, store_location
from facegate.models import MODELS, get_model
from facegate.paths import data_dir
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL
from facegate.verification import verify


def default_gallery() -> Path | str:
    """``$FACEGATE_GALLERY`` (a file or a ``postgresql://`` URL), else ``~/.local/share/facegate/gallery.sqlite``."""
    override = os.environ.get("FACEGATE_GALLERY")
    if override:
        return override if is_url(override) else Path(override).expanduser()
    return data_dir() / "gallery.sqlite"


#: a rate strictly between 0 and 1
RATE = click.FloatRange(0, 1, min_open=True, max_open=True)
fmr_option = click.option(
    "--fmr",
    type=RATE,
    default=None,
    help=f"False-match rate a 1:1 decision allows [default: {DEFAULT_FMR:g}, or your `facegate calibrate`'s].",
)
fpir_option = click.option(
    "--fpir",
    type=RATE,
    default=None,
    help=f"Share of strangers identification may name as someone [default: {DEFAULT_FPIR:g}].",
)


class GalleryLocation(click.ParamType):
    """A gallery's file (a Path) or a server's URL such as ``postgresql://user@host/db`` (a str, kept as given)."""

    name = "gallery"

    def convert(self, value, param, ctx):
        if isinstance(value, Path) or value is None:
            return value
        try:
            if is_url(value):
                return str(value)
        except UnknownNameError as exc:
            self.fail(str(exc), param, ctx)
        path = Path(store_location(value))
        if path.is_dir():
            self.fail(f"{value} is a folder, not a gallery file", param, ctx)
        return path


GALLERY_LOCATION = GalleryLocation()


def gallery_option(f):
    """--gallery: the gallery (file or URL) a command works on."""
    return click.option(
        "--gallery",
        "gallery_path",
        type=GALLERY_LOCATION,
        default=None,
        help="Gallery file, or a postgresql://user:password@host/dbname URL "
        "[default: $FACEGATE_GALLERY or ~/.local/share/facegate/gallery.sqlite].",
    )(f)


@dataclass(frozen=True)
class GalleryChoice:
    """What a gallery command's options say: which gallery, and how it embeds and decides."""

    location: Path | str | None = None
    model: str | None = None
    detector: str = DEFAULT_DETECTOR
    threshold: float | None = None
    fmr: float | None = None
    fpir: float | None = None

    def open(self, create: bool = False) -> Gallery:
        """The gallery; only commands that enrol create one (and its folder)."""
        return open_gallery(self.location, self.model, self.detector, self.threshold, self.fmr, self.fpir, create)


def _handed(f):
    """Hand ``f`` one :class:`GalleryChoice` (parameter ``where``) instead of the gallery options' values."""

    @functools.wraps(f)
    def command(*args, **kwargs):
        fields = ("model", "detector", "threshold", "fmr", "fpir")
        given = {field: kwargs.pop(field) for field in fields if field in kwargs}
        return f(*args, where=GalleryChoice(kwargs.pop("gallery_path"), **given), **kwargs)

    return command


def _embedding(f):
    f = click.option("--detector", type=click.Choice(DETECTORS.names()), default=DEFAULT_DETECTOR, show_default=True)(f)
    return click.option(
        "--model", type=click.Choice(MODELS.names()), default=None, help="Embedding model (default: the gallery's)."
    )(f)


def _deciding(f):
    f = fpir_option(fmr_option(f))
    return click.option(
        "--threshold", type=float, default=None, help="A raw distance threshold instead of --fmr / --fpir."
    )(f)


def store_options(f):
    """--gallery and --json, handed over as ``where`` (a :class:`GalleryChoice`) and ``as_json``."""
    return json_option(gallery_option(_handed(f)))


def embed_options(f):
    """The store options plus the model and detector, for commands that embed photos."""
    return json_option(gallery_option(_embedding(_handed(f))))


def gallery_options(f):
    """The embedding options plus the operating point, for commands that decide."""
    return json_option(gallery_option(_embedding(_deciding(_handed(f)))))


def rate_options(f):
    """The store options plus --fmr and --fpir (the rates a gallery reports at its size)."""
    return json_option(gallery_option(fpir_option(fmr_option(_handed(f)))))


def open_gallery(
    gallery_path: Path | str | None,
    model: str | None = None,
    detector: str = DEFAULT_DETECTOR,
    threshold: float | None = None,
    fmr: float | None = None,
    fpir: float | None = None,
    create: bool = False,
) -> Gallery:
    """The gallery a command works on; only commands that enrol create one (and its folder)."""
    path = gallery_path or default_gallery()
    if create and isinstance(path, Path):  # a server's gallery has no folder to make
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"cannot create the gallery {path}: {exc.strerror or exc}") from exc
    return Gallery(
        path, model_name=model, detector_backend=detector, threshold=threshold, fmr=fmr, fpir=fpir, create=create
    )


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


@click.command()
@click.argument("name")
@click.argument("photos", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--add", is_flag=True, help="Add the photos to an already enrolled person.")
@embed_options
def enroll(name, photos, add, as_json, where):
    """Enroll NAME from one or more PHOTOS (all or nothing)."""
    with errors_to_exit(as_json), where.open(create=True) as gallery:
        result = gallery.add_photos(name, list(photos)) if add else gallery.enroll(name, list(photos))
        lines = [f"Enrolled {name} from {_plural(len(result.template_ids), 'photo')}."]
        lines += [
            f"  note: {photos[i]} shows {result.faces_found[i]} faces; the main one (largest near the middle) "
            f"was enrolled as {name}"
            for i in result.crowded
        ]
        emit(as_json, result.to_dict(), "\n".join(lines))


@click.command("enroll-dir")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--add", is_flag=True, help="Add photos to people already enrolled instead of skipping them.")
@embed_options
def enroll_dir(directory, add, as_json, where):
    """Enroll everyone in DIRECTORY: one sub-folder per person, named after them.

    Each person is enrolled all or nothing; people whose photos fail are reported
    and skipped (exit code 1).
    """
    folders = {p.name: image_files(p) for p in sorted(directory.iterdir()) if p.is_dir()}
    folders = {name: photos for name, photos in folders.items() if photos}
    if not folders:
        raise click.UsageError(f"{directory} has no sub-folders with photos (expected DIR/<person>/*.jpg)")
    with errors_to_exit(as_json), where.open(create=True) as gallery:
        report = gallery.enroll_many(folders, add=add, progress=not as_json)
        lines = [f"Enrolled {_plural(len(report.enrolled), 'person', 'people')}, skipped {len(report.skipped)}."]
        lines += [f"  {name}: {why}" for name, why in report.failed.items()]
        lines += [f"  {name}: already enrolled (use --add)" for name in report.skipped]
        emit(as_json, report.to_dict(), "\n".join(lines))
        if report.failed:
            raise SystemExit(EXIT_NO)


@click.command()
@click.argument("name")
@store_options
def remove(name, as_json, where):
    """Remove NAME and all their photos from the gallery."""
    with errors_to_exit(as_json), where.open() as gallery:
        removed = gallery.remove(name)
        emit(as_json, {"name": name, "templates_removed": removed}, f"Removed {name} ({_plural(removed, 'photo')}).")


@click.command()
@click.argument("old")
@click.argument("new")
@store_options
def rename(old, new, as_json, where):
    """Rename the enrolled person OLD to NEW."""
    with errors_to_exit(as_json), where.open() as gallery:
        gallery.rename(old, new)
        emit(as_json, {"old": old, "new": new}, f"Renamed {old} to {new}.")


@click.command()
@rate_options
def people(as_json, where):
    """List the enrolled people, and the error rates of decisions at the gallery's size."""
    with errors_to_exit(as_json), where.open() as gallery:
        records = gallery.people()
        state = gallery.state()
        payload = {
            "gallery": gallery.path,
            "model": gallery.model_name,
            "settings": gallery.settings.to_dict(),
            "people": [r.to_dict() for r in records],
            "state": state.to_dict(),
        }
        width = max((len(r.name) for r in records), default=4)
        lines = [f"{r.name:<{width}}  {_plural(r.templates, 'photo')}" for r in records]
        text = "\n".join(lines) if lines else "Nobody is enrolled yet."
        emit(as_json, payload, text + "\n\n" + describe_settings(gallery.settings) + "\n" + describe_state(state))


def describe_settings(settings) -> str:
    """What makes a gallery's embeddings, in one line."""
    weights = f", weights {settings.weights}" if settings.weights else ""
    tta = "with the flip" if settings.tta == "flip" else "without the flip"
    return f"Embeddings: {settings.model}{weights}, {tta}, run on {settings.engine}."


def _rate(value: float | None) -> str:
    """A rate as people read it: "3.7%", or "1 in 1,000" when small."""
    if value is None:
        return "n/a"
    if value >= 0.01 or value == 0:
        return f"{100 * value:.2g}%"
    return f"1 in {round(1 / value):,}"


def describe_state(state) -> str:
    """What the gallery's operating points mean at its size, for people."""
    door, ident = state.door, state.identification
    lines = [
        f"{_plural(state.people, 'person', 'people')}, {_plural(state.templates, 'photo')} ({state.score} scores)."
    ]
    if door.get("target_fmr") is not None:
        lines.append(
            "Door check: lets in a stranger claiming to be someone with "
            f"{_plural(door['templates_per_person'], 'photo')} at most {_rate(door['expected_fmr'])} of the time "
            f"(target FMR {door['target_fmr']:g}); refuses about {_rate(door['expected_fnmr'])} "
            "of genuine single-photo attempts."
        )
    if ident.get("target_fpir") is not None:
        lines.append(
            f"Identification: names a stranger as someone {_rate(ident['expected_fpir'])} of the time "
            f"(target FPIR {ident['target_fpir']:g} at this size); misses about {_rate(ident['expected_fnmr'])} "
            "of enrolled people from one photo."
        )
    if door and door.get("target_fmr") is None:
        lines.append(f"Decisions use a fixed threshold ({door['source']}); no error rate is known for it.")
    lines += [f"warning: {w}" for w in state.warnings]
    return "\n".join(lines)


@click.command("verify")
@click.argument("photo", type=click.Path(dir_okay=False), required=False)
@click.option("--as", "name", required=True, help="The person the visitor claims to be.")
@live_options
@gallery_options
def verify_cmd(photo, name, as_json, where, **live):
    """The door check: is the face in PHOTO the enrolled person NAME? Exit 0 only if so.

    With --live (and --camera N or --source VIDEO instead of PHOTO), the visitor is asked
    for a random action, and the door opens only when the same face on the camera is NAME
    and performs it (see "Liveness at the door" in the README for what that does not stop).
    """
    if live.pop("live"):
        if photo is not None:
            raise click.UsageError("--live reads a camera or a video (--camera / --source), not PHOTO")
        with errors_to_exit(as_json), where.open() as gallery:
            live_verify(gallery, name, as_json=as_json, **live)
        return
    if photo is None:
        raise click.UsageError("give the PHOTO to check, or --live with --camera / --source")
    with errors_to_exit(as_json), where.open() as gallery:
        result = gallery.verify_identity(photo, name)
        detail = f"(distance {result.distance:.2f}, threshold {result.threshold:.2f}"
        detail += f" at FMR {result.target_fmr:g})" if result.target_fmr is not None else ")"
        if result.verified:
            emit(as_json, result.to_dict(), f"It's {name}, welcome in! {detail}")
        else:
            emit(as_json, result.to_dict(), f"It's not {name}, please go away {detail}")
            raise SystemExit(EXIT_NO)


@click.command()
@click.argument("photo", type=click.Path())
@click.option("--top-k", type=click.IntRange(1), default=3, show_default=True, help="Candidates to report.")
@click.option("--all-faces", is_flag=True, help="Identify every face in the photo, not only the main one.")
@gallery_options
def identify(photo, top_k, all_faces, as_json, where):
    """Who is in PHOTO? Exit 0 when identified, 1 when not in the database.

    PHOTO may be a folder: then every photo in it (recursively) gets one line per
    face, as CSV (photo, face, identity, distance, threshold, error) or JSON lines,
    with a progress bar; a photo that fails gets its error on its line.
    """
    with errors_to_exit(as_json), where.open() as gallery:
        if Path(photo).is_dir():
            identify_folder(gallery, Path(photo), top_k, all_faces, as_json)
            return
        results = gallery.identify_all(photo, top_k) if all_faces else [gallery.identify(photo, top_k)]
        lines = [
            f"It's {r.identity}, the distance is {r.distance:.2f}" if r.known else "Not in the database."
            for r in results
        ]
        payload = {"faces": [r.to_dict() for r in results]} if all_faces else results[0].to_dict()
        emit(as_json, payload, "\n".join(lines))
        if not any(r.known for r in results):
            raise SystemExit(EXIT_NO)


FOLDER_COLUMNS = ["photo", "face", "identity", "distance", "threshold", "error"]


def identify_folder(gallery: Gallery, folder: Path, top_k: int, all_faces: bool, as_json: bool) -> None:
    """One line per photo and face of ``folder``; errors are lines too, never the end of the run."""
    from tqdm.auto import tqdm

    from facegate.cli.faces import photo_paths
    from facegate.errors import FacegateError

    writer = None if as_json else csv.DictWriter(sys.stdout, FOLDER_COLUMNS, lineterminator="\n")
    if writer is not None:
        writer.writeheader()
    for path in tqdm(photo_paths((str(folder),)), unit="photo", desc="identifying", file=sys.stderr):
        try:
            results = gallery.identify_all(path, top_k) if all_faces else [gallery.identify(path, top_k)]
            rows = [
                {"photo": str(path), "face": i, **({"result": r.to_dict()} if as_json else _csv(r))}
                for i, r in enumerate(results)
            ]
        except FacegateError as exc:
            rows = [{"photo": str(path), "face": None, "error": f"{type(exc).__name__}: {exc}"}]
        for row in rows:
            if writer is not None:
                writer.writerow(row)
            else:
                click.echo(json.dumps(row))


def _csv(result) -> dict:
    return {
        "identity": result.identity or "",
        "distance": "" if result.distance is None else f"{result.distance:.4f}",
        "threshold": f"{result.threshold:.4f}",
    }


@click.command()
@click.argument("photo_a", type=click.Path(dir_okay=False))
@click.argument("photo_b", type=click.Path(dir_okay=False))
@click.option("--model", type=click.Choice(MODELS.names()), default=DEFAULT_MODEL, show_default=True)
@click.option("--detector", type=click.Choice(DETECTORS.names()), default=DEFAULT_DETECTOR, show_default=True)
@click.option("--metric", type=click.Choice(METRICS.names()), default=None, help="Default: the model's own.")
@click.option("--threshold", type=float, default=None, help="A raw distance threshold instead of --fmr.")
@fmr_option
@json_option
def compare(photo_a, photo_b, model, detector, metric, threshold, fmr, as_json):
    """Are PHOTO_A and PHOTO_B the same person? Exit 0 if so, 1 if not."""
    with errors_to_exit(as_json):
        result = verify(photo_a, photo_b, model, detector, metric, threshold, fmr=fmr)
        verdict = "Same person" if result.verified else "Different people"
        sign = "<=" if result.verified else ">"
        text = f"{verdict}: distance {result.distance:.3f} {sign} threshold {result.threshold:.3f} ({result.model})."
        emit(as_json, result.to_dict(), text)
        if not result.verified:
            raise SystemExit(EXIT_NO)


@click.command("models")
@json_option
def models_cmd(as_json):
    """List the embedding models, detectors and metrics, with the thresholds in use."""
    from facegate.decisions import scoring_for
    from facegate.decisions.table import threshold_entry

    rows = []
    for model in MODELS.names():
        for metric in METRICS.names():
            default = scoring_for(model, metric)
            if default.unavailable:
                continue
            kinds = list(threshold_entry(model, metric).get("scores", {})) or [default.kind]
            for kind in kinds:
                scoring = scoring_for(model, metric, normalise=kind == "asnorm") if kind != default.kind else default
                points = scoring.curve.operating_points() if scoring.curve is not None else []
                fixed = scoring.fixed_threshold
                rows.append(
                    {
                        **scoring.to_dict(),
                        "default": kind == default.kind,
                        "operating_points": points,
                        "fixed_threshold": fixed,
                    }
                )
    engine = get_model(DEFAULT_MODEL).engine.describe()
    payload = {
        "models": MODELS.names(),
        "detectors": DETECTORS.names(),
        "metrics": METRICS.names(),
        "engine": engine,
        "scoring": rows,
    }
    how = f", converted from dlib's file in {engine['conversion_seconds']} s" if "conversion_seconds" in engine else ""
    how += f", {engine['threads']} thread(s) per process" if "threads" in engine else ""
    lines = [
        f"models:    {', '.join(MODELS.names())}",
        f"detectors: {', '.join(DETECTORS.names())}",
        f"metrics:   {', '.join(METRICS.names())}",
        f"engine:    {engine['engine']} runs {DEFAULT_MODEL}{how} (--engine / $FACEGATE_ENGINE: onnx or dlib)",
        "",
        f"operating points (1:1; default FMR {DEFAULT_FMR:g}; accept when the score <= its threshold):",
    ]
    for r in rows:
        head = f"  {r['model']:<20} {r['metric']:<13} {r['score'] + ('*' if r['default'] else ''):<10}"
        if r["fixed_threshold"] is not None:
            lines.append(f"{head}{r['fixed_threshold']:.4f}  ({r['source']})")
        if r["operating_points"]:
            cells = "  ".join(
                f"FMR {p['fmr']:g}: {p['threshold']:.4f} (FNMR {p['fnmr']:.1%})" for p in r["operating_points"]
            )
            lines.append(f"{head}{cells}")
    lines.append(
        "* the score decisions use by default; curves measured on: " + "; ".join(sorted({r["source"] for r in rows}))
    )
    emit(as_json, payload, "\n".join(lines))


COMMANDS = [enroll, enroll_dir, remove, rename, people, verify_cmd, identify, compare, models_cmd]
