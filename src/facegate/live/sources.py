"""Video sources: a webcam, a video file or a network stream, read with OpenCV as RGB frames.

A file is read frame by frame and its end ends the run. A live source (webcam, RTSP or
HTTP address) is read by a thread that keeps only the newest frame, so a slow consumer
drops frames instead of queuing them; a network stream that stops is reopened with
exponential backoff before it is given up as lost (:class:`~facegate.errors.StreamError`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import StreamError

#: how often a lost network stream is reopened, and the first wait (doubled each try)
RECONNECT_TRIES = 4
RECONNECT_WAIT_S = 0.5


@dataclass(frozen=True)
class Frame:
    """One frame: its index in the source, its time (video time for a file, seconds since the start live), RGB."""

    index: int
    time: float
    rgb: np.ndarray


def parse_source(source: str | int | Path) -> int | str:
    """A webcam index (an int or a string of digits) or a path / address as given."""
    if isinstance(source, int):
        return source
    text = str(source)
    return int(text) if text.isdigit() else text


def is_network(source: int | str) -> bool:
    return isinstance(source, str) and "://" in source


class VideoSource:
    """An opened source; iterate :meth:`frames`, then :meth:`release` (or use it as a context manager)."""

    def __init__(
        self,
        source: str | int | Path,
        reconnect_tries: int = RECONNECT_TRIES,
        reconnect_wait: float = RECONNECT_WAIT_S,
        opener: Callable[[int | str], cv2.VideoCapture] = cv2.VideoCapture,
    ) -> None:
        self.source = parse_source(source)
        self.live = isinstance(self.source, int) or is_network(self.source)
        self.reconnect_tries = reconnect_tries
        self.reconnect_wait = reconnect_wait
        self._opener = opener
        #: frames a live source read but nobody took (the consumer was busy)
        self.dropped = 0
        if isinstance(self.source, str) and not self.live and not Path(self.source).is_file():
            raise StreamError(f"cannot open the video source {self.source}: no such file")
        self._capture = self._open()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        #: the source's own frame rate (25 when it does not say)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 25.0
        self.size = (
            int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )

    def _open(self) -> cv2.VideoCapture:
        capture = self._opener(self.source)
        if not capture.isOpened():
            capture.release()
            raise StreamError(f"cannot open the video source {self.source}")
        return capture

    def _reopen(self) -> bool:
        """Reopen a lost network stream, waiting longer before each try; False when every try failed."""
        self._capture.release()
        for attempt in range(self.reconnect_tries):
            time.sleep(self.reconnect_wait * 2**attempt)
            try:
                self._capture = self._open()
                return True
            except StreamError:
                continue
        return False

    def _read(self) -> np.ndarray | None:
        """The next BGR frame; None at a file's end. A network stream that fails is reopened first."""
        ok, frame = self._capture.read()
        if ok:
            return frame
        if is_network(self.source):
            if not self._reopen():
                raise StreamError(f"lost the video stream {self.source} and could not reopen it")
            ok, frame = self._capture.read()
            if ok:
                return frame
            raise StreamError(f"lost the video stream {self.source} and could not read it again")
        return None

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """A file's frames in order, every ``every``-th one (the others are skipped undecoded)."""
        index = 0
        while True:
            if index % every and self._capture.grab():
                index += 1
                continue
            bgr = self._read()
            if bgr is None:
                return
            yield Frame(index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def latest(self) -> Iterator[Frame]:
        """A live source's newest frame each time one is asked for; frames read meanwhile are dropped."""
        reader = _LatestReader(self)
        reader.start()
        try:
            while True:
                frame = reader.take()
                if frame is None:
                    return
                yield frame
        finally:
            reader.stop()

    def release(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _LatestReader(threading.Thread):
    """Reads a live source as fast as it comes, keeping only the newest frame."""

    def __init__(self, source: VideoSource) -> None:
        super().__init__(daemon=True, name="facegate-video-reader")
        self._source = source
        self._cond = threading.Condition()
        self._frame: tuple[int, float, np.ndarray] | None = None  # index, time, BGR
        self._done = False
        self._error: StreamError | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        index = 0
        try:
            while not self._stop.is_set():
                bgr = self._source._read()
                if bgr is None:
                    break
                frame = (index, time.monotonic() - start, bgr)
                index += 1
                with self._cond:
                    if self._frame is not None:
                        self._source.dropped += 1
                    self._frame = frame
                    self._cond.notify()
        except StreamError as exc:
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify()

    def take(self) -> Frame | None:
        """Wait for a frame newer than the last one taken; None when the source ended."""
        with self._cond:
            while self._frame is None and not self._done:
                self._cond.wait(0.5)
            frame, self._frame = self._frame, None
        if frame is None:
            if self._error is not None:
                raise self._error
            return None
        index, seconds, bgr = frame
        return Frame(index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def stop(self) -> None:
        self._stop.set()
        self.join(timeout=2.0)
