"""Streams: sources, IoU tracking, and the watcher on face_recognition's Hamilton clip."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from facegate.cli import main
from facegate.cli.live import describe
from facegate.errors import StreamError
from facegate.gallery import Gallery
from facegate.live import IoUTracker, VideoSource, iou, watch
from facegate.live.sources import parse_source

from .conftest import data_dir

PEOPLE = ("lin-manuel-miranda", "alex-lacamoire")


# -- tracking -------------------------------------------------------------------
def test_iou_of_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0


def test_a_slowly_moving_box_keeps_its_track():
    tracker = IoUTracker(max_misses=3)
    ids = set()
    for step in range(10):
        seen, _, ended = tracker.update([(100 + 3 * step, 50 + step, 80, 80)], [None], step, step / 5)
        ids.update(t.id for t in seen)
        assert not ended
    assert ids == {1}
    assert tracker.tracks[0].hits == 10


def test_a_far_box_makes_a_new_track_and_greedy_matching_keeps_each_face():
    tracker = IoUTracker()
    tracker.update([(0, 0, 50, 50), (300, 0, 50, 50)], [None, None], 0, 0.0)
    seen, new, _ = tracker.update([(302, 1, 50, 50), (4, 2, 50, 50), (150, 200, 40, 40)], [None] * 3, 1, 0.2)
    assert [t.id for t in seen] == [2, 1, 3]
    assert [t.id for t in new] == [3]


def test_a_track_ends_after_n_frames_without_a_match():
    tracker = IoUTracker(max_misses=3)
    tracker.update([(0, 0, 50, 50)], [np.ones(3)], 0, 0.0)
    for frame in (1, 2):
        assert tracker.update([], [], frame, frame / 5)[2] == []
    _, _, ended = tracker.update([], [], 3, 0.6)
    assert [t.id for t in ended] == [1]
    assert tracker.tracks == []
    assert len(ended[0].embeddings) == 1


# -- sources --------------------------------------------------------------------
def test_sources_are_parsed():
    assert parse_source("0") == 0
    assert parse_source(2) == 2
    assert parse_source("rtsp://camera/stream") == "rtsp://camera/stream"


def test_an_unopenable_source_is_a_stream_error(tmp_path):
    with pytest.raises(StreamError):
        VideoSource(tmp_path / "missing.mp4")
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"this is not a video")
    with pytest.raises(StreamError):
        VideoSource(not_video)
    with pytest.raises(StreamError):
        list(watch(tmp_path / "missing.mp4", Gallery(":memory:", "mean-colour", "flat")))


def test_the_cli_exits_with_the_stream_error_code(tmp_path):
    gallery = tmp_path / "g.sqlite"
    Gallery(gallery, "mean-colour", "flat").close()
    result = CliRunner().invoke(main, ["watch", str(tmp_path / "missing.mp4"), "--gallery", str(gallery), "--json"])
    assert result.exit_code == StreamError.exit_code == 8
    assert json.loads(result.output)["error"] == "StreamError"


class _Dropping:
    """A capture that opens, fails its reads after two frames, and opens again only on the second try."""

    opened = 0

    def __init__(self, source):
        type(self).opened += 1
        self.reads = 0

    def isOpened(self):
        return type(self).opened != 2

    def read(self):
        self.reads += 1
        return (self.reads <= 2, np.zeros((4, 4, 3), np.uint8) if self.reads <= 2 else None)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_a_dropped_network_stream_is_reopened_with_backoff():
    _Dropping.opened = 0
    video = VideoSource("rtsp://camera/stream", reconnect_tries=3, reconnect_wait=0.001, opener=_Dropping)
    assert video.live
    assert video._read() is not None and video._read() is not None
    assert video._read() is not None  # lost, one failed reopen, then reopened
    assert _Dropping.opened == 3


class _Lost(_Dropping):
    """A stream that opens once and is then gone for good."""

    def isOpened(self):
        return type(self).opened == 1


def test_a_stream_that_stays_lost_is_a_stream_error():
    _Lost.opened = 0
    video = VideoSource("http://camera/stream", reconnect_tries=3, reconnect_wait=0.001, opener=_Lost)
    video._read(), video._read()
    with pytest.raises(StreamError, match="could not reopen"):
        video._read()
    assert _Lost.opened == 4


# -- the watcher on a real clip ---------------------------------------------------
@pytest.fixture(scope="module")
def hamilton(tmp_path_factory):
    """The Hamilton clip's events, watched at 10 analysed frames per second with both people enrolled."""
    folder = data_dir("face_recognition_examples", "examples")
    gallery = Gallery(tmp_path_factory.mktemp("live") / "g.sqlite")
    for name in PEOPLE:
        gallery.enroll(name, [folder / f"{name}.png"])
    stats: dict = {}
    annotated = tmp_path_factory.mktemp("out") / "out.mp4"
    events = list(watch(folder / "short_hamilton_clip.mp4", gallery, fps=10, annotate=annotated, stats=stats))
    gallery.close()
    return events, stats, annotated


def test_watch_names_each_person_once_per_track_and_no_one_else(hamilton):
    events, _, _ = hamilton
    kinds = Counter(e["event"] for e in events)
    assert kinds == {"track_appeared": 10, "identified": 5, "track_left": 10}
    named = [e for e in events if e["event"] == "identified"]
    assert Counter(e["track"] for e in named).most_common(1)[0][1] == 1  # each track named at most once
    assert Counter(e["name"] for e in named) == {"lin-manuel-miranda": 2, "alex-lacamoire": 1, None: 2}
    assert all(e["frames"] == 3 for e in named)
    assert all(e["distance"] <= e["threshold"] for e in named if e["name"])
    assert all(e["distance"] > e["threshold"] for e in named if not e["name"])
    left = {e["track"]: e["name"] for e in events if e["event"] == "track_left"}
    assert sorted(left) == sorted(e["track"] for e in events if e["event"] == "track_appeared")
    assert all(left[e["track"]] == e["name"] for e in named)
    json.dumps(events)  # JSON lines


def test_watch_analyses_every_third_frame_and_writes_the_annotated_video(hamilton):
    _, stats, annotated = hamilton
    assert stats == {"frames": 274, "analysed": 92, "dropped": 0}
    capture = cv2.VideoCapture(str(annotated))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 92
    capture.release()


def test_events_read_as_sentences():
    assert describe({"event": "track_appeared", "track": 1, "time": 0.0, "box": {"x": 1, "y": 2, "w": 3, "h": 4}})
    line = describe(
        {"event": "identified", "track": 2, "time": 1.5, "name": None, "distance": 0.5, "threshold": 0.4, "frames": 3}
    )
    assert "not in the database" in line
    assert describe({"event": "track_left", "track": 2, "time": 2.0, "name": "ada"}).endswith("left (ada)")
