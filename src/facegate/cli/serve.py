"""The service's commands: ``facegate serve``, ``facegate keys``, ``facegate events``, ``facegate unlock``.

Only ``serve`` needs the ``serve`` extra (FastAPI, uvicorn); keys, the audit log and
unlocking work on the gallery's file with the core install, without loading a model.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import click

from facegate.cli.core import default_gallery, fmr_option, fpir_option, gallery_option, open_gallery
from facegate.cli.output import emit, errors_to_exit, json_option
from facegate.detection import DETECTORS
from facegate.gallery.audit import EventQuery, query_events
from facegate.gallery.backends import open_existing, stored_meta
from facegate.gallery.keys import ROLES, active_keys, create_key, list_keys, revoke_key
from facegate.gallery.lockout import LockoutPolicy, unlock
from facegate.service.settings import ServeSettings  # plain dataclasses: no FastAPI imported

#: the service's defaults, each defined once in its settings
DEFAULTS = ServeSettings(gallery="")
LOCKOUT = LockoutPolicy()


@contextmanager
def _store(gallery_path: Path | str | None) -> Iterator[Any]:
    """The existing gallery's store, closed when done."""
    store = open_existing(gallery_path or default_gallery())
    try:
        yield store
    finally:
        store.close()


#: the lockout's options: (flag, LockoutPolicy field, click type, seconds per unit, metavar, help)
_LOCKOUT_OPTIONS = (
    (
        "--lockout-attempts",
        "attempts",
        click.IntRange(1),
        1,
        None,
        "Refused door checks in a row for one name that lock it.",
    ),
    (
        "--lockout-window",
        "window",
        click.FloatRange(min=0, min_open=True),
        60,
        "MINUTES",
        "The refusals must all fall within this many minutes.",
    ),
    (
        "--lockout-minutes",
        "duration",
        click.FloatRange(min=0, min_open=True),
        60,
        None,
        "How long a lock lasts (an admin can unlock sooner).",
    ),
)


def serve_options(f):
    """The service's options, handed over as one :class:`ServeSettings` (parameter ``settings``;
    its gallery is filled in by the command), each default taken from ServeSettings and LockoutPolicy."""

    @functools.wraps(f)
    def command(*args, **kwargs):
        lockout = LockoutPolicy(
            **{name: kwargs.pop(f"lockout_{name}") * unit for _, name, _, unit, _, _ in _LOCKOUT_OPTIONS}
        )
        given = {field.name: kwargs.pop(field.name) for field in fields(ServeSettings) if field.name in kwargs}
        return f(*args, settings=ServeSettings(gallery="", lockout=lockout, **given), **kwargs)

    options = [
        click.option(
            "--host",
            default=DEFAULTS.host,
            show_default=True,
            help="Address to listen on (one reachable from other machines needs at least one API key).",
        ),
        click.option("--port", type=click.IntRange(0, 65535), default=DEFAULTS.port, show_default=True),
        click.option(
            "--workers",
            type=click.IntRange(1),
            default=DEFAULTS.workers,
            show_default=True,
            help="Worker processes (each loads the model once; one per CPU core uses them all).",
        ),
        click.option("--detector", type=click.Choice(DETECTORS.names()), default=DEFAULTS.detector, show_default=True),
        fmr_option,
        fpir_option,
        click.option(
            "--max-upload-mb",
            type=click.FloatRange(min=0.001),
            default=DEFAULTS.max_upload_mb,
            show_default=True,
            help="Largest request body accepted (413 above it).",
        ),
        click.option(
            "--keep-photos",
            "keep_photos_days",
            type=click.FloatRange(min=0),
            default=DEFAULTS.keep_photos_days,
            metavar="DAYS",
            help="Keep each decision's photos this many days in the gallery (default 0: only their SHA-256).",
        ),
    ]
    options += [
        click.option(
            flag,
            f"lockout_{name}",
            type=kind,
            default=getattr(LOCKOUT, name) if unit == 1 else getattr(LOCKOUT, name) / unit,
            show_default=True,
            metavar=metavar,
            help=text,
        )
        for flag, name, kind, unit, metavar, text in _LOCKOUT_OPTIONS
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@gallery_option
@serve_options
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(gallery_path, settings: ServeSettings, log_level):
    """Serve the gallery over HTTP: the door API, the web console at / and the API's documentation at /docs."""
    with errors_to_exit(False):  # the serve extra missing: 6
        import uvicorn

        from facegate.service.settings import SETTINGS_ENV, is_loopback
    path = gallery_path or default_gallery()
    if isinstance(path, Path):  # a URL is kept as given
        path = path.expanduser().resolve()
    with (
        errors_to_exit(False),
        open_gallery(path, detector=settings.detector, fmr=settings.fmr, fpir=settings.fpir, create=True) as gallery,
        gallery.store.reading() as db,
    ):
        people, keys, shown_path = len(gallery), active_keys(db), gallery.path  # a URL without its password
    host, port, workers = settings.host, settings.port, settings.workers
    if keys == 0 and not is_loopback(host):
        click.echo(
            f"error: refusing to serve on {host} without an API key: anyone who can reach it could use it. "
            f"Create one first: facegate keys create --role admin --gallery {shown_path}",
            err=True,
        )
        sys.exit(2)
    metrics_dir = tempfile.mkdtemp(prefix="facegate-metrics-") if workers > 1 else None
    settings = replace(settings, gallery=str(path), metrics_dir=metrics_dir)
    os.environ[SETTINGS_ENV] = settings.to_json()
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"facegate serves {shown_path} ({people} {'person' if people == 1 else 'people'}) at http://{shown}:{port}/ "
        "(console) and /docs (API), "
        f"{workers} worker process{'es' if workers > 1 else ''}.",
        err=True,
    )
    if keys == 0:
        click.echo(
            f"note: there is no API key yet, so every request but /health is refused; create one: "
            f"facegate keys create --role admin --gallery {shown_path}",
            err=True,
        )
    try:
        uvicorn.run(
            "facegate.service.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@click.group()
def keys():
    """API keys of `facegate serve`: create (shown once), list, revoke."""


@keys.command("create")
@click.option(
    "--role", type=click.Choice(ROLES), required=True, help="admin: everything; door: verify, identify, compare."
)
@click.option("--name", "label", default=None, help="A label the audit log shows (default: the role and key id).")
@gallery_option
@json_option
def keys_create(role, label, gallery_path, as_json):
    """Create an API key: the key alone goes to standard output, once (only a salted hash is stored)."""
    with errors_to_exit(as_json):
        path = gallery_path or default_gallery()
        # a new gallery: made with the default model, as enrolling would
        store = open_existing(path) if stored_meta(path) else open_gallery(path, create=True).store
        try:
            with store.transaction() as db:
                record, key = create_key(db, role, label or None)
        finally:
            store.close()
        if as_json:
            emit(True, {**record.to_dict(), "key": key}, "")
            return
        click.echo(
            f"Created {role} key {record.id} ({record.label}) in {store.path}. It is shown this once: keep it now.",
            err=True,
        )
        click.echo(key)


@keys.command("list")
@gallery_option
@json_option
def keys_list(gallery_path, as_json):
    """Every key: id, role, label, when it was created and revoked (never the key)."""
    with errors_to_exit(as_json):
        with _store(gallery_path) as store, store.reading() as db:
            records = list_keys(db)
        lines = [f"{'id':<8}  {'role':<5}  {'status':<7}  {'created (UTC)':<19}  label"]
        lines += [
            f"{k.id:<8}  {k.role:<5}  {'active' if k.active else 'revoked':<7}  {k.created_at[:19]:<19}  {k.label}"
            for k in records
        ]
        emit(as_json, {"keys": [k.to_dict() for k in records]}, "\n".join(lines) if records else "No API keys.")


@keys.command("revoke")
@click.argument("key_id")
@gallery_option
@json_option
def keys_revoke(key_id, gallery_path, as_json):
    """Revoke the key KEY_ID (its id from `facegate keys list`): refused at once by a running service."""
    with errors_to_exit(as_json):
        with _store(gallery_path) as store, store.transaction() as db:
            record = revoke_key(db, key_id)
        emit(as_json, record.to_dict(), f"Revoked {record.role} key {record.id} ({record.label}).")


@click.command()
@gallery_option
@click.option(
    "--since",
    default=None,
    help="From: ISO 8601 (UTC unless a zone is given), a date, today, yesterday, or an age such as 15m, 2h, 7d.",
)
@click.option("--until", default=None, help="Up to (as --since; a date alone means its whole day).")
@click.option("--person", default=None, help="Only events about this person (claimed, identified or changed).")
@click.option(
    "--outcome", default=None, help="accepted, refused, locked, identified, unknown, same, different, done..."
)
@click.option(
    "--kind",
    default=None,
    help="verify, identify, compare, enroll, add_photos, rename, remove, key_created, key_revoked, lock, unlock.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="The latest N events.")
@json_option
def events(gallery_path, since, until, person, outcome, kind, limit, as_json):
    """The audit log: every decision of `facegate serve` and every change to people and keys, oldest first."""
    with errors_to_exit(as_json):
        with _store(gallery_path) as store, store.reading() as db:
            found, more = query_events(db, EventQuery(since, until, person, outcome, kind, limit))
        found.reverse()
        text = "\n".join(describe_event(e) for e in found) if found else "No events."
        if more is not None:
            text += "\n(older events not shown: --limit, --since)"
        emit(as_json, {"events": [e.to_dict() for e in found], "more": more is not None}, text)


def describe_event(event) -> str:
    """One line of the log for people: UTC time, what, outcome, who, how close, who asked."""
    parts = [event.time[:19].replace("T", " "), f"{event.kind:<11}", f"{event.outcome:<10}", event.name or "-"]
    if event.distance is not None:
        parts.append(f"distance {event.distance:.2f} / threshold {event.threshold:.2f} ({event.operating_point})")
    elif event.kind in ("identify",) and event.threshold is not None:
        parts.append(f"threshold {event.threshold:.2f} ({event.operating_point})")
    extra = {k: v for k, v in event.detail.items() if k not in ("until",)} if event.detail else {}
    if event.kind == "lock":
        parts.append(f"until {event.detail.get('until', '?')[:19].replace('T', ' ')}")
    elif extra:
        parts.append(" ".join(f"{k}={v}" for k, v in extra.items()))
    who = " ".join(x for x in (f'key "{event.key_label}"' if event.key_label else "", event.client or "") if x)
    parts.append(f"[{event.endpoint or '?'}{' ' + who if who else ''}]")
    if event.photo_sha256:
        shas = event.photo_sha256.split(",")
        parts.append(f"photo {shas[0][:12]}" + (f" +{len(shas) - 1}" if len(shas) > 1 else ""))
    return "  ".join(parts)


@click.command("unlock")
@click.argument("name")
@gallery_option
@json_option
def unlock_cmd(name, gallery_path, as_json):
    """Lift the lock on door checks for NAME (after refusals in a row)."""
    from facegate.gallery.gallery import check_name

    with errors_to_exit(as_json):
        name = check_name(name)
        with _store(gallery_path) as store:
            store.person_id(name)
            with store.transaction() as db:
                was_locked = unlock(db, name)
        text = f"Unlocked door checks for {name}." if was_locked else f"Door checks for {name} were not locked."
        emit(as_json, {"name": name, "unlocked": was_locked}, text)


COMMANDS = [serve, keys, events, unlock_cmd]
