"""``facegate verify --live``: the door check with a liveness challenge, from a camera or a video.

The options are added to ``facegate verify`` by :func:`live_options`; ``verify`` hands
over to :func:`live_verify` when ``--live`` is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from facegate.cli.output import EXIT_NO, emit
from facegate.errors import StreamError


def live_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--live, --camera, --source, --seconds and --challenge."""
    from facegate.live.liveness import CHALLENGES, DEFAULT_SECONDS

    f = click.option(
        "--challenge",
        type=click.Choice(CHALLENGES.names()),
        default=None,
        help="With --live: ask for this action instead of a random one (e.g. to judge a recorded video).",
    )(f)
    f = click.option(
        "--seconds",
        type=click.FloatRange(min=0.5),
        default=DEFAULT_SECONDS,
        show_default=True,
        help="With --live: how long to watch for the action.",
    )(f)
    f = click.option(
        "--source", default=None, help="With --live: a video file or an rtsp:// / http:// address instead of a camera."
    )(f)
    f = click.option("--camera", type=click.IntRange(min=0), default=None, help="With --live: the webcam's index.")(f)
    return click.option(
        "--live",
        is_flag=True,
        help="Ask for a random action (blink, turn left, turn right) and check it on the camera's frames too.",
    )(f)


def read_frames(source: str | int, seconds: float, fps: float) -> list[tuple[Any, float]]:
    """About ``seconds`` of frames at ``fps``, as (RGB, seconds) pairs: a live source's newest
    frame at that rate, or a file's frames of its first ``seconds`` of video time."""
    from facegate.live.sources import VideoSource

    frames: list[tuple[Any, float]] = []
    with VideoSource(source) as video:
        every = 1 if video.live else max(1, round(video.fps / fps))
        stream: Iterator = video.latest() if video.live else video.frames(every)
        try:
            for frame in stream:
                tick = time.monotonic()
                if frame.time > seconds:
                    break
                frames.append((frame.rgb, frame.time))
                if video.live:  # the reader keeps only the newest frame meanwhile
                    time.sleep(max(0.0, 1 / fps - (time.monotonic() - tick)))
        finally:
            if hasattr(stream, "close"):
                stream.close()
    return frames


def describe(result) -> str:
    """What a liveness result means, for people."""
    name = result.identity
    if result.accepted:
        detail = f"(distance {result.distance:.2f}, threshold {result.threshold:.2f})"
        return f"Live: {result.message}. It's {name}, welcome in! {detail}"
    if result.live and not result.verified:
        return f"Live, but it's not {name}: please go away ({result.message})."
    return f"Not shown to be live ({result.reason}: {result.message}): the door stays shut."


def live_verify(gallery, name: str, camera: int | None, source: str | None, seconds: float, challenge, as_json: bool):
    """Run one live door check and print its result; exit 0 only when the door opens."""
    from facegate.live.liveness import DEFAULT_FPS, LivenessCheck, get_challenge, new_challenge

    if camera is not None and source is not None:
        raise click.UsageError("give --camera or --source, not both")
    where: str | int = source if source is not None else (camera if camera is not None else 0)
    gallery.door_point(name)  # an unknown person fails before the camera opens
    action = challenge or new_challenge()
    prompt = get_challenge(action).prompt
    # the instruction goes to the terminal (stderr): stdout keeps only the result
    click.echo(f">>> {prompt} (within {seconds:g} seconds)", err=True)
    frames = read_frames(where, seconds, DEFAULT_FPS)
    if not frames:
        raise StreamError(f"the video source {where} gave no frames")
    result = LivenessCheck(gallery).judge(frames, name, action, seconds=seconds)  # the window asked for
    emit(as_json, result.to_dict(), describe(result))
    if not result.accepted:
        raise SystemExit(EXIT_NO)
