"""``facegate watch``: follow and name the faces of a webcam, a video file or a network stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from facegate.cli.core import gallery_option, open_gallery
from facegate.cli.output import errors_to_exit, json_option
from facegate.live.watch import DEFAULT_FPS, DEFAULT_FUSE_FRAMES


def describe(event: dict[str, Any]) -> str:
    """One line for people about one watch event."""
    head = f"{event['time']:8.2f}s  track {event['track']}"
    kind = event["event"]
    if kind == "track_appeared":
        box = event["box"]
        return f"{head} appeared at ({box['x']}, {box['y']}), {box['w']}x{box['h']} px"
    if kind == "identified":
        if event["name"] is None:
            nearest = "" if event["distance"] is None else f"nearest at distance {event['distance']:.3f} > "
            return f"{head} is not in the database ({nearest}{event['threshold']:.3f}; {event['frames']} frames)"
        return (
            f"{head} is {event['name']} (distance {event['distance']:.3f} <= {event['threshold']:.3f}; "
            f"{event['frames']} frames)"
        )
    name = f" ({event['name']})" if event.get("name") else ""
    return f"{head} left{name}"


@click.command("watch")
@click.argument("source")
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_FPS,
    show_default=True,
    help="Frames analysed per second.",
)
@click.option(
    "--frames",
    "fuse_frames",
    type=click.IntRange(min=1),
    default=DEFAULT_FUSE_FRAMES,
    show_default=True,
    help="Frames of a tracked face fused to identify it.",
)
@click.option(
    "--annotate",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the analysed frames, with boxes and names, to this video file (e.g. out.mp4).",
)
@gallery_option
@json_option
def watch_cmd(source, fps, fuse_frames, annotate, gallery_path, as_json):
    """Watch SOURCE (a webcam index, a video file, an rtsp:// or http:// address) and name each face once.

    Prints one line per event (a face appeared, was identified, left); --json prints JSON lines.
    Ctrl-C stops.
    """
    from facegate.live.watch import watch

    with errors_to_exit(as_json), open_gallery(gallery_path) as gallery:
        try:
            for event in watch(source, gallery, fps=fps, fuse_frames=fuse_frames, annotate=annotate):
                click.echo(json.dumps(event) if as_json else describe(event))
        except KeyboardInterrupt:
            click.echo("stopped", err=True)


COMMANDS = [watch_cmd]
