"""The ``facegate`` command line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from facegate import __version__
from facegate.cli.calibrate import calibrate
from facegate.cli.core import COMMANDS
from facegate.cli.evaluate import evaluate
from facegate.cli.faces import COMMANDS as FACE_COMMANDS
from facegate.cli.gallery import COMMANDS as GALLERY_COMMANDS
from facegate.cli.live import COMMANDS as LIVE_COMMANDS
from facegate.cli.oneshot import oneshot_command
from facegate.cli.output import EXIT_UNEXPECTED, emit, errors_to_exit, json_option
from facegate.cli.serve import COMMANDS as SERVICE_COMMANDS
from facegate.cli.train import train
from facegate.cli.train_faces import faces_command
from facegate.gallery.ann import SEARCHES
from facegate.models.engines import DEFAULT_ENGINE, ENGINE_ENV, ENGINES, THREADS_ENV


class FacegateGroup(click.Group):
    """The command group; an error facegate did not foresee exits with its own code.

    Exit code 70 (EX_SOFTWARE) means "facegate failed", never "no": a script checking
    a door decision cannot mistake a crash for a refused face. The message is one
    line; ``facegate --debug ...`` shows the traceback.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            click.echo(
                f"facegate: unexpected error ({type(exc).__name__}: {exc}); this is a bug, please report it "
                "with the output of `facegate --debug ...`",
                err=True,
            )
            ctx.exit(EXIT_UNEXPECTED)


@click.group(cls=FacegateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="facegate")
@click.option("--debug", is_flag=True, help="Show the full traceback of an unexpected error.")
@click.option(
    "--engine",
    type=click.Choice(sorted(ENGINES.names())),
    default=None,
    help=f"What runs dlib's face network (default: ${ENGINE_ENV}, else {DEFAULT_ENGINE}).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help=f"ONNX Runtime threads per process (default: ${THREADS_ENV}, else 1; worker processes add parallelism).",
)
@click.option(
    "--index",
    type=click.Choice(SEARCHES),
    default=None,
    help="How a gallery is searched: every template (exact), an approximate index kept beside the gallery "
    "(ann: faiss's inverted lists; hnsw: hnswlib's graph instead; ivf: the same as ann), or exact below "
    "20,000 templates and the index above (auto) [default: $FACEGATE_INDEX, else auto]. A PostgreSQL "
    "gallery's auto, ivf and hnsw search its templates in this process; its ann searches in SQL (pgvector).",
)
@click.pass_context
def main(ctx: click.Context, debug: bool, engine: str | None, threads: int | None, index: str | None) -> None:
    """Face verification and recognition on a CPU: enroll people, then ask who is at the door."""
    _record_changes_as(ctx.invoked_subcommand)
    # through the environment, so worker processes started later see the same choice
    for variable, value in ((ENGINE_ENV, engine), (THREADS_ENV, threads), ("FACEGATE_INDEX", index)):
        if value is not None:
            os.environ[variable] = str(value)


evaluate.add_command(oneshot_command)
train.add_command(faces_command)
for command in [
    *COMMANDS,
    *FACE_COMMANDS,
    *GALLERY_COMMANDS,
    *LIVE_COMMANDS,
    *SERVICE_COMMANDS,
    evaluate,
    calibrate,
    train,
]:
    main.add_command(command)


def _record_changes_as(command: str | None) -> None:
    """The audit log records this command's changes (enroll, rename, keys...) as made by it, from this account."""
    import getpass
    import socket

    from facegate.gallery.audit import set_default_source

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid()) if hasattr(os, "getuid") else "?"
    set_default_source(f"cli {command or ''}".strip(), client=f"{user}@{socket.gethostname()}")


@main.command()
@click.option(
    "--photos",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A folder of photos, one per resident, plus camera_N shots (e.g. the Happy House images).",
)
@click.option(
    "--gallery",
    "gallery_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's gallery in this file (default: a temporary one).",
)
@json_option
def demo(photos: Path | None, gallery_path: Path | None, as_json: bool) -> None:
    """Run the office-door story end to end, offline."""
    from facegate.demo import run_folder, run_packaged
    from facegate.gallery import Gallery

    say = (lambda _text: None) if as_json else click.echo
    with errors_to_exit(as_json), tempfile.TemporaryDirectory() as tmp:
        path = gallery_path or Path(tmp) / "demo.sqlite"
        with Gallery(path) as gallery:
            outcome = run_folder(gallery, photos, say) if photos else run_packaged(gallery, say)
        emit(as_json, outcome.to_dict(), "") if as_json else None
