"""Watching a video: speed, share of frames analysed, and how soon a face is named.

On face_recognition's Hamilton clip (640x360, 275 frames at 29.97 fps) and on a 720p
copy of it (upscaled with cv2.resize, written to a temporary file first), with the two
people of the clip enrolled from their reference photos, ``facegate.live.watch`` runs at
each analysis rate. Reported: frames of video processed per wall second, the share of
frames analysed, and for each identified track the latency from its first frame to its
identification, in video time and in wall time (median and worst over the tracks).

    .venv/bin/python bench/live.py [--fps 5 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facegate.gallery import Gallery
from facegate.live import watch

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "data" / "face_recognition_examples" / "examples"
PEOPLE = ("lin-manuel-miranda", "alex-lacamoire")


def upscale(src: Path, dst: Path, size: tuple[int, int] = (1280, 720)) -> Path:
    capture = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), capture.get(cv2.CAP_PROP_FPS), size)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC))
    capture.release()
    writer.release()
    return dst


def run(video: Path, gallery: Gallery, fps: float) -> dict:
    """One watch of ``video``: speed, share analysed, and per identified track its latency (video s, wall s)."""
    stats: dict = {}
    appeared: dict[int, tuple[float, float]] = {}  # track -> (video time of its first frame, wall clock then)
    video_lat, wall_lat = [], []
    start = time.perf_counter()
    for event in watch(video, gallery, fps=fps, stats=stats):
        now = time.perf_counter()
        if event["event"] == "track_appeared":
            appeared[event["track"]] = (event["time"], now)
        elif event["event"] == "identified":
            first_time, first_wall = appeared[event["track"]]
            video_lat.append(event["time"] - first_time)
            wall_lat.append(now - first_wall)
    wall = time.perf_counter() - start
    return {
        "fps_processed": stats["frames"] / wall,
        "analysed": stats["analysed"] / stats["frames"],
        "identified": len(video_lat),
        "video_lat": video_lat,
        "wall_lat": wall_lat,
    }


def _lat(values: list[float]) -> str:
    return f"{np.median(values):.2f} / {max(values):.2f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, nargs="+", default=[5.0, 10.0], help="analysis rates to measure")
    args = parser.parse_args()
    clip = EXAMPLES / "short_hamilton_clip.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery(Path(tmp) / "g.sqlite")
        for name in PEOPLE:
            gallery.enroll(name, [EXAMPLES / f"{name}.png"])
        videos = {"640x360 (original)": clip, "1280x720 (upscaled)": upscale(clip, Path(tmp) / "720p.mp4")}
        list(watch(clip, gallery, fps=1))  # warm up: models loaded, ONNX graph built
        print(
            "| video | analysis rate | frames/s processed | frames analysed | identifications "
            "| latency, video s (median / max) | latency, wall s (median / max) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, video in videos.items():
            for fps in args.fps:
                r = run(video, gallery, fps)
                print(
                    f"| {label} | {fps:g}/s | {r['fps_processed']:.1f} | {r['analysed']:.0%} | {r['identified']} "
                    f"| {_lat(r['video_lat'])} | {_lat(r['wall_lat'])} |",
                    flush=True,
                )
        gallery.close()


if __name__ == "__main__":
    main()
