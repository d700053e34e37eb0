"""Faces followed across frames: boxes matched by overlap (IoU), greedily, best pair first.

A track keeps its box, its recent embeddings and how many analysed frames in a row it
went unmatched; after ``max_misses`` such frames it ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a box as (x, y, width, height) in pixels
Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when they do not overlap."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@dataclass(eq=False)
class Track:
    """One face followed across frames."""

    id: int
    box: Box
    first_frame: int
    first_time: float
    last_frame: int
    last_time: float
    embeddings: deque = field(default_factory=deque)
    #: analysed frames this face was matched in, and in a row without a match
    hits: int = 1
    misses: int = 0
    #: the identification event once the track was named (or found not in the database)
    identified: dict[str, Any] | None = None

    def recent(self, n: int) -> np.ndarray:
        """The last ``n`` embeddings, one a row."""
        return np.stack(list(self.embeddings)[-n:])


class IoUTracker:
    """Greedy IoU tracking: each analysed frame's boxes continue the tracks they overlap most."""

    def __init__(self, min_iou: float = 0.3, max_misses: int = 3, keep: int = 10) -> None:
        self.min_iou = min_iou
        self.max_misses = max_misses
        self.keep = keep
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(
        self, boxes: list[Box], embeddings: list[np.ndarray | None], frame: int, time: float
    ) -> tuple[list[Track], list[Track], list[Track]]:
        """Match one analysed frame's faces; returns (tracks matched or new, new tracks, ended tracks)."""
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        matched_tracks: set[int] = set()
        matched_boxes: dict[int, Track] = {}
        for overlap, ti, bi in pairs:
            if overlap < self.min_iou:
                break
            if ti in matched_tracks or bi in matched_boxes:
                continue
            matched_tracks.add(ti)
            matched_boxes[bi] = self.tracks[ti]
        new: list[Track] = []
        seen: list[Track] = []
        for bi, box in enumerate(boxes):
            track = matched_boxes.get(bi)
            if track is None:
                track = Track(self._next_id, box, frame, time, frame, time, deque(maxlen=self.keep), hits=0)
                self._next_id += 1
                new.append(track)
            track.box, track.last_frame, track.last_time, track.misses = box, frame, time, 0
            track.hits += 1
            if embeddings[bi] is not None:
                track.embeddings.append(embeddings[bi])
            seen.append(track)
        ended = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.misses >= self.max_misses:
                    ended.append(track)
        self.tracks = [t for t in self.tracks if t not in ended] + new
        return seen, new, ended

    def finish(self) -> list[Track]:
        """End every track (the source ended)."""
        ended, self.tracks = self.tracks, []
        return ended
