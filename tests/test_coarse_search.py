"""Large photos are searched shrunk first; small faces still need (and get) the whole search."""

from __future__ import annotations

import numpy as np

from facegate.detection import get_detector
from facegate.detection.base import COARSE_FACTOR, COARSE_SIDE
from facegate.images import load_image
from facegate.pipeline import detect_faces
from tests.conftest import data_dir


def _photo(name: str) -> np.ndarray:
    return load_image(data_dir("face_recognition_examples", "examples") / name)


def test_a_1080p_portrait_is_found_in_the_shrunk_copy_where_the_whole_search_finds_it():
    image = _photo("obama-1080p.jpg")
    assert min(image.shape[:2]) >= COARSE_FACTOR * COARSE_SIDE
    coarse = get_detector("hog").find_coarse(image)
    whole = get_detector("hog").find(image)
    assert len(coarse) == len(whole) == 1
    (a,), (b,) = coarse, whole
    assert abs(a.x - b.x) <= 0.1 * b.w and abs(a.y - b.y) <= 0.1 * b.h and abs(a.w - b.w) <= 0.1 * b.w
    # landmarks are found again at full size, so they sit where the whole search puts them
    assert np.abs(a.landmarks - b.landmarks).max() <= 6.0


def test_an_image_under_the_coarse_size_is_not_searched_shrunk():
    image = _photo("obama-720p.jpg")
    assert min(image.shape[:2]) < COARSE_FACTOR * COARSE_SIDE
    assert get_detector("hog").find_coarse(image) == []


def test_the_skip_detector_never_shrinks():
    assert get_detector("skip").find_coarse(np.zeros((2000, 2000, 3), np.uint8)) == []


def test_every_face_of_a_large_group_photo_is_found_either_way():
    image = _photo("knn_examples/test/obama_and_biden.jpg")
    quick = detect_faces(image)
    thorough = detect_faces(image, thorough=True)
    assert len(quick) == len(thorough) == 3


def test_automatic_upsampling_stops_at_its_pixel_budget():
    from facegate.detection.base import AUTO_UPSAMPLE_PIXELS, auto_upsample

    assert auto_upsample(np.zeros((100, 100, 3), np.uint8)) == [0, 1, 2]
    assert auto_upsample(np.zeros((250, 250, 3), np.uint8)) == [0, 1]
    assert auto_upsample(np.zeros((720, 720, 3), np.uint8)) == [0, 1]  # 2.07 MP doubled
    assert 720 * 720 * 4 <= AUTO_UPSAMPLE_PIXELS < 720 * 1280 * 4
    assert auto_upsample(np.zeros((720, 1280, 3), np.uint8)) == [0]


def test_the_cnn_fallback_searches_a_large_photo_without_a_face_only_shrunk(monkeypatch):
    from facegate.detection.detectors import CnnDetector

    seen: list[tuple[int, int]] = []

    def record(self, image, upsample=0):
        seen.append((image.shape[0] * 2**upsample, image.shape[1] * 2**upsample))
        return []

    monkeypatch.setattr(CnnDetector, "detect", record)
    empty = np.full((1080, 1920, 3), 120, np.uint8)
    assert detect_faces(empty, "hog+cnn") == []
    assert seen == [(COARSE_SIDE, 1137)]  # the 640 px copy, once; never the 2 MP photo, never upsampled
