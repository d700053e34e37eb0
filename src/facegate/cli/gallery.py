"""``facegate gallery``: a gallery as a whole (copy it between backends: an SQLite file, PostgreSQL; split a
PostgreSQL gallery's search into shards)."""

from __future__ import annotations

from pathlib import Path

import click

from facegate.cli.core import GALLERY_LOCATION
from facegate.cli.output import emit, errors_to_exit, json_option
from facegate.errors import GalleryError
from facegate.gallery.pg_shards import SHARD_EF_CONSTRUCTION, SHARD_EF_SEARCH, SHARD_M


@click.group("gallery")
def gallery_group():
    """A gallery as a whole: copy it between an SQLite file and PostgreSQL, split a server's search."""


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


@gallery_group.command("shards")
@click.argument("location", type=GALLERY_LOCATION)
@click.argument("shards", type=int)
@click.option("--m", "m", type=int, default=SHARD_M, show_default=True, help="links per template in each shard's graph")
@click.option(
    "--ef-construction", type=int, default=SHARD_EF_CONSTRUCTION, show_default=True, help="each graph's build effort"
)
@click.option(
    "--ef-search", type=int, default=SHARD_EF_SEARCH, show_default=True, help="templates each shard's search keeps"
)
@json_option
def shards_cmd(location, shards, m, ef_construction, ef_search, as_json):
    """Split the search of the PostgreSQL gallery LOCATION into SHARDS indexes searched at once (1: one again).

    Each shard is a pgvector HNSW index over the people whose id leaves its number divided by
    SHARDS, on their templates in half precision; a search (with --index ann) asks every shard at
    once, one connection each, and scores what they found exactly. For a gallery of a million
    templates on a 2-core machine, 2 shards: each takes about 20 minutes to build, during which
    enrolments wait (searches do not). Indexes of another layout are dropped; an interrupted build
    resumes where it stopped.
    """
    from facegate.gallery.backends import open_existing
    from facegate.gallery.pg_shards import build_shards

    with errors_to_exit(as_json):
        store = open_existing(location)
        try:
            report = build_shards(store, shards, m, ef_construction, ef_search)
        finally:
            store.close()
        layout = (
            f"{report.shards} shards (m {report.m}, ef_construction {report.ef_construction}, "
            f"ef_search {report.ef_search})"
        )
        emit(
            as_json,
            report.to_dict(),
            f"{report.gallery}: search split into {layout}; built {len(report.built)}, kept {len(report.kept)}, "
            f"dropped {len(report.dropped)} indexes in {report.seconds} s."
            if report.shards > 1
            else f"{report.gallery}: one index searches again; dropped {len(report.dropped)} shard indexes.",
        )


COMMANDS = [gallery_group]
