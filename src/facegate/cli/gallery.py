"""``facegate gallery``: a gallery as a whole (copy it between backends: an SQLite file, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import click

from facegate.cli.core import GALLERY_LOCATION
from facegate.cli.output import emit, errors_to_exit, json_option
from facegate.errors import GalleryError


@click.group("gallery")
def gallery_group():
    """A gallery as a whole: copy it between an SQLite file and PostgreSQL."""


@gallery_group.command("copy")
@click.argument("source", type=GALLERY_LOCATION)
@click.argument("destination", type=GALLERY_LOCATION)
@json_option
def copy_cmd(source, destination, as_json):
    """Copy the gallery SOURCE into DESTINATION (a new file or an empty database), then check the counts.

    Each is a gallery file or a postgresql://user:password@host/dbname URL. People,
    templates (embeddings bit-exact) and the gallery's model and settings are copied in
    one transaction; a destination with people, or of another model, is refused. Into
    PostgreSQL, the templates are written with near ones together and pgvector's index is
    built once after them, which gives a graph that searches better (a million templates:
    about five minutes).
    """
    from facegate.gallery.backends import copy_gallery

    with errors_to_exit(as_json):
        if isinstance(destination, Path) and not destination.parent.exists():
            try:
                destination.parent.mkdir(parents=True)
            except OSError as exc:
                raise GalleryError(f"cannot create the gallery {destination}: {exc.strerror or exc}") from exc
        report = copy_gallery(source, destination)
        emit(
            as_json,
            report.to_dict(),
            f"Copied {report.people} people and {report.templates} templates ({report.model}) "
            f"from {report.source} to {report.destination}; counts and templates checked.",
        )


COMMANDS = [gallery_group]
