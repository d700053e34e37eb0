"""Watch a video source: follow the faces in it and name each tracked face once.

The frames analysed are a file's every k-th frame (k from the source's frame rate and
the analysis rate), or a live source's newest frame at the analysis rate. Each analysed
frame's faces are detected and embedded by :func:`facegate.pipeline.represent`, matched
to tracks (:class:`~facegate.live.tracking.IoUTracker`), and a track with ``fuse_frames``
embeddings is identified once from their mean (:func:`~facegate.decisions.fusion.mean_embedding`)
at the gallery's operating point. What happens comes out as event dicts, one JSON line each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facegate.decisions.fusion import mean_embedding
from facegate.errors import NoFaceError, StreamError
from facegate.gallery import Gallery
from facegate.live.sources import Frame, VideoSource
from facegate.live.tracking import IoUTracker, Track
from facegate.pipeline import represent

#: default analysis rate (frames per second), frames fused per identification, misses that end a track
DEFAULT_FPS = 5.0
DEFAULT_FUSE_FRAMES = 3
DEFAULT_MAX_MISSES = 3


class Watcher:
    """Tracks and names the faces of the frames it is given, one analysed frame at a time."""

    def __init__(
        self,
        gallery: Gallery,
        fuse_frames: int = DEFAULT_FUSE_FRAMES,
        max_misses: int = DEFAULT_MAX_MISSES,
        min_iou: float = 0.3,
    ) -> None:
        self.gallery = gallery
        self.fuse_frames = fuse_frames
        self.tracker = IoUTracker(min_iou=min_iou, max_misses=max_misses, keep=max(10, fuse_frames))
        self.analysed = 0

    def analyse(self, frame: Frame) -> list[dict[str, Any]]:
        """One frame's events: tracks that left, tracks that appeared, tracks named."""
        self.analysed += 1
        faces = self._faces(frame)
        boxes = [(f.facial_area.x, f.facial_area.y, f.facial_area.w, f.facial_area.h) for f in faces]
        embeddings = [self._usable(f) for f in faces]
        seen, new, ended = self.tracker.update(boxes, embeddings, frame.index, frame.time)
        events = [_left(t) for t in ended] + [_appeared(t) for t in new]
        for track in seen:
            if track.identified is None and len(track.embeddings) >= self.fuse_frames:
                track.identified = self._identify(track, frame)
                events.append(track.identified)
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The source ended: every track still open leaves."""
        return [_left(t) for t in self.tracker.finish()]

    def _faces(self, frame: Frame) -> list:
        g = self.gallery
        try:
            return represent(
                frame.rgb, g.model_name, g.detector_backend, "all", tta=g.tta, label=f"frame {frame.index}"
            )
        except NoFaceError:
            return []

    def _usable(self, face) -> np.ndarray | None:
        """The face's embedding, or None when the gallery's quality gate would refuse it as a probe."""
        gate, quality = self.gallery.quality, face.quality
        if gate is not None and quality is not None and gate.reasons(quality):
            return None
        return face.embedding

    def _identify(self, track: Track, frame: Frame) -> dict[str, Any]:
        fused = mean_embedding(track.recent(self.fuse_frames))
        result = self.gallery.identify_embedding(fused, top_k=1)
        return {
            "event": "identified",
            "track": track.id,
            "frame": frame.index,
            "time": round(frame.time, 3),
            "name": result.identity,
            "distance": None if result.distance is None else round(float(result.distance), 4),
            "threshold": result.threshold,
            "frames": self.fuse_frames,
        }


def _box(track: Track) -> dict[str, int]:
    return dict(zip(("x", "y", "w", "h"), map(int, track.box), strict=True))


def _appeared(track: Track) -> dict[str, Any]:
    time_ = round(track.first_time, 3)
    return {"event": "track_appeared", "track": track.id, "frame": track.first_frame, "time": time_, "box": _box(track)}


def _left(track: Track) -> dict[str, Any]:
    name = track.identified["name"] if track.identified else None
    return {
        "event": "track_left",
        "track": track.id,
        "frame": track.last_frame,
        "time": round(track.last_time, 3),
        "name": name,
        "frames": track.hits,
    }


def watch(
    source: str | int | Path,
    gallery: Gallery,
    fps: float = DEFAULT_FPS,
    fuse_frames: int = DEFAULT_FUSE_FRAMES,
    max_misses: int = DEFAULT_MAX_MISSES,
    annotate: str | Path | None = None,
    stats: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of watching ``source`` (a webcam index, a video file, an RTSP/HTTP address) with ``gallery``.

    Analyses ``fps`` frames per second; ``annotate`` writes the analysed frames, boxes
    and names drawn, to a video file. ``stats``, when given, is filled with the frames
    read, analysed and dropped. Raises :class:`~facegate.errors.StreamError` when the
    source cannot be opened. Closing the generator (or Ctrl-C) releases the source and writer.
    """
    if fps <= 0:
        raise ValueError("the analysis rate must be positive")
    stats = {} if stats is None else stats
    watcher = Watcher(gallery, fuse_frames, max_misses)
    writer: cv2.VideoWriter | None = None
    with VideoSource(source) as video:
        every = 1 if video.live else max(1, round(video.fps / fps))
        frames = video.latest() if video.live else video.frames(every)
        try:
            for frame in frames:
                started = time.monotonic()
                yield from watcher.analyse(frame)
                stats.update(frames=frame.index + 1, analysed=watcher.analysed, dropped=video.dropped)
                if annotate is not None:
                    writer = writer or _writer(annotate, frame, video.fps / every if not video.live else fps)
                    writer.write(draw(frame, watcher.tracker.tracks))
                if video.live:  # wait out the analysis period; the reader keeps only the newest frame meanwhile
                    time.sleep(max(0.0, 1 / fps - (time.monotonic() - started)))
            yield from watcher.finish()
        finally:
            if isinstance(frames, Iterator) and hasattr(frames, "close"):
                frames.close()
            if writer is not None:
                writer.release()


def _writer(path: str | Path, frame: Frame, fps: float) -> cv2.VideoWriter:
    height, width = frame.rgb.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise StreamError(f"cannot write the annotated video {path}")
    return writer


def draw(frame: Frame, tracks: list[Track]) -> np.ndarray:
    """The frame as BGR with each current track's box and name (green: named, red: not in the database)."""
    image = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
    for track in tracks:
        if track.last_frame != frame.index:
            continue
        x, y, w, h = track.box
        found = track.identified
        label = f"#{track.id}" if found is None else f"#{track.id} {found['name'] or 'unknown'}"
        colour = (0, 200, 255) if found is None else (0, 200, 0) if found["name"] else (0, 0, 230)
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(image, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return image
