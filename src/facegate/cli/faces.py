"""``facegate detect`` and ``facegate represent``: faces and embeddings, no gallery.

What face_recognition's ``face_detection`` and deepface's ``extract_faces`` /
``represent`` give: boxes and landmarks (5 points, or dlib's 68), aligned crops
written to a folder, and embeddings as JSON lines or a ``.npy`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from PIL import Image

from facegate.cli.output import errors_to_exit, json_option
from facegate.datasets.folders import image_files
from facegate.detection import DETECTORS
from facegate.errors import FacegateError
from facegate.images import load_image
from facegate.models import MODELS, get_model
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_MULTI_FACE, detect_faces, represent_many


def photo_paths(sources: tuple[str, ...]) -> list[Path]:
    """The photos named, with every image of a named folder (sorted, recursively)."""
    out: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            out += image_files(source, recursive=True)
        else:
            out.append(source)
    return out


@click.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--detector", type=click.Choice(DETECTORS.names()), default=DEFAULT_DETECTOR, show_default=True)
@click.option("--landmarks", type=click.Choice(["5", "68"]), default="5", show_default=True)
@click.option(
    "--crops",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write each face's aligned crop (the default model's chip) to this folder as PNG.",
)
@json_option
def detect(photos, detector, landmarks, crops, as_json):
    """Find the faces in PHOTOS (files or folders): boxes, landmarks, aligned crops.

    One line per face (JSON lines with --json); a photo that cannot be read or holds
    no face gets a line saying so, and the exit code is 1 when any did.
    """
    model = get_model(DEFAULT_MODEL)
    failed = False
    with errors_to_exit(as_json):
        if crops is not None:
            crops.mkdir(parents=True, exist_ok=True)
        for path in photo_paths(photos):
            try:
                image = load_image(path)
                faces = detect_faces(image, detector)
            except FacegateError as exc:
                failed = True
                _line(as_json, {"photo": str(path), "error": type(exc).__name__, "message": str(exc)})
                continue
            if not faces:
                failed = True
                _line(as_json, {"photo": str(path), "faces": 0})
            for i, face in enumerate(faces):
                row = {"photo": str(path), "face": i, **face.to_dict()}
                row["landmarks"] = _points(image, face, landmarks)
                if crops is not None:
                    target = crops / f"{path.stem}_face{i}.png"
                    Image.fromarray(model.chip(image, face)).save(target)
                    row["crop"] = str(target)
                _line(as_json, row)
    raise SystemExit(1 if failed else 0)


def _points(image: np.ndarray, face, which: str) -> list[list[float]]:
    if which == "68":
        from facegate.alignment_openface import landmarks_68

        points = landmarks_68(image, face)
    else:
        points = face.landmarks
    return [[round(float(x), 1), round(float(y), 1)] for x, y in points]


def _line(as_json: bool, row: dict) -> None:
    if as_json:
        click.echo(json.dumps(row))
    elif "error" in row:
        click.echo(f"{row['photo']}: {row['message']}")
    elif row.get("faces") == 0:
        click.echo(f"{row['photo']}: no face found")
    else:
        extra = f" -> {row['crop']}" if "crop" in row else ""
        click.echo(
            f"{row['photo']}: face {row['face']} at x={row['x']} y={row['y']} w={row['w']} h={row['h']} "
            f"(confidence {row['confidence']:.2f}){extra}"
        )


@click.command("represent")
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--model", type=click.Choice(MODELS.names()), default=DEFAULT_MODEL, show_default=True)
@click.option("--detector", type=click.Choice(DETECTORS.names()), default=DEFAULT_DETECTOR, show_default=True)
@click.option("--all-faces", is_flag=True, help="Every face of each photo, not only the main one.")
@click.option(
    "--npy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the embeddings as one (faces, dim) .npy array, in the order of the lines.",
)
def represent_cmd(photos, model, detector, all_faces, npy):
    """Embeddings of the faces in PHOTOS (files or folders), as JSON lines.

    Each line holds the photo, the face's box and its embedding, or the error that
    stopped the photo; the exit code is 1 when any photo failed.
    """
    paths = photo_paths(photos)
    with errors_to_exit(True):
        results = represent_many(
            [str(p) for p in paths],
            model,
            detector,
            "all" if all_faces else DEFAULT_MULTI_FACE,
            labels=[str(p) for p in paths],
            progress=len(paths) > 1,
        )
        vectors, failed = [], False
        for path, result in zip(paths, results, strict=True):
            if isinstance(result, FacegateError):
                failed = True
                click.echo(json.dumps({"photo": str(path), "error": type(result).__name__, "message": str(result)}))
                continue
            for i, face in enumerate(result):
                click.echo(json.dumps({"photo": str(path), "face": i, **face.to_dict()}))
                vectors.append(face.embedding)
        if npy is not None:
            np.save(npy, np.array(vectors, dtype=np.float32).reshape(len(vectors), get_model(model).dim))
    raise SystemExit(1 if failed else 0)


COMMANDS = [detect, represent_cmd]
