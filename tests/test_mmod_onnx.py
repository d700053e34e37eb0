"""dlib's MMOD CNN face detector on ONNX Runtime: the parse, the conversion, the equivalence with dlib."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from facegate.detection import mmod_onnx
from facegate.detection.mmod_onnx import (
    SOURCE,
    MmodOnnxDetector,
    converted_model,
    load_net,
    pyramid_tiles,
    pyramid_up,
    resize_bilinear,
    tiled_pyramid,
)
from facegate.models.dlib_format import DlibFormatError, load_network
from facegate.resources import model_file

from .conftest import data_dir

#: the largest difference in confidence allowed between dlib and ONNX Runtime for the same
#: window. Measured: at most 3e-6 over ~1,000 images (scores are ~1; the two add the same
#: float32 products of each 9x9x45 and 5x5xk convolution in different orders).
CONFIDENCE_TOLERANCE = 1e-4


def test_the_whole_file_is_read_into_the_detector():
    net = load_network(model_file(SOURCE))
    assert net["consumed"] == net["bytes"] == model_file(SOURCE).stat().st_size
    kinds = collections.Counter(layer["type"] for layer in net["layers"])
    assert kinds == {"input_rgb_image_pyramid": 1, "con": 7, "affine": 6, "relu": 6}
    loss = net["loss"]
    assert loss["type"] == "loss_mmod" and loss["detector_windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert loss["overlaps_nms"]["percent_covered_thresh"] == 1.0
    assert 0.33 < loss["overlaps_nms"]["iou_thresh"] < 0.34
    assert loss["assume_image_pyramid"] and not loss["use_bounding_box_regression"]
    inp = net["layers"][0]
    assert (inp["pyramid_padding"], inp["pyramid_outer_padding"]) == (10, 11)  # dlib's defaults for this old file
    np.testing.assert_allclose([inp["avg_red"], inp["avg_green"], inp["avg_blue"]], [122.782, 117.001, 104.298])
    convs = [layer for layer in net["layers"] if layer["type"] == "con"]
    assert [(c["num_filters"], c["nr"], c["stride_y"], c["padding_y"]) for c in convs] == [
        (16, 5, 2, 0), (32, 5, 2, 0), (32, 5, 2, 0), (45, 5, 1, 2), (45, 5, 1, 2), (45, 5, 1, 2), (1, 9, 1, 4),
    ]  # fmt: skip
    bn = net["layers"][2]  # a bn_con2 read as dlib's affine_(bn_) makes it
    stats = bn["batch_norm"]
    expected = stats["gamma"].reshape(-1) / np.sqrt(stats["running_variances"] + np.float32(stats["eps"]))
    np.testing.assert_allclose(bn["gamma"].reshape(-1), expected, rtol=1e-6)
    with pytest.raises(DlibFormatError):
        load_network(model_file(SOURCE).read_bytes()[:5000])


def test_resampling_is_dlibs_bit_for_bit():
    dlib = pytest.importorskip("dlib")
    rng = np.random.default_rng(0)
    for h, w, oh, ow in [(37, 41, 75, 84), (112, 92, 225, 186), (250, 250, 208, 208), (243, 320, 202, 266)]:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mine = resize_bilinear(rgb.transpose(2, 0, 1), oh, ow, rgb8=True).transpose(1, 2, 0)
        np.testing.assert_array_equal(mine, dlib.resize_image(rgb, oh, ow))
        grey = rng.standard_normal((h, w)).astype(np.float32)
        np.testing.assert_array_equal(resize_bilinear(grey[None], oh, ow)[0], dlib.resize_image(grey, oh, ow))
    assert pyramid_up(np.zeros((96, 80, 3), np.uint8)).shape == (193, 162, 3)  # pyramid_down<2>::rect_up


def test_pyramid_tiles():
    rects, nr, nc = pyramid_tiles(250, 250)
    sizes = [(b - t + 1, r - lft + 1) for lft, t, r, b in rects]
    assert rects[0] == (11, 11, 260, 260) and nc == 272
    assert sizes[:4] == [(250, 250), (208, 208), (173, 173), (144, 144)]  # floor(5/6 * previous)
    assert min(h for h, _ in sizes) >= 5
    for i, a in enumerate(rects):  # tiles inside the image, never overlapping
        assert min(a[:2]) >= 0 and a[2] < nc and a[3] < nr
        for b in rects[i + 1 :]:
            assert max(a[0], b[0]) > min(a[2], b[2]) or max(a[1], b[1]) > min(a[3], b[3])
    assert pyramid_tiles(0, 10) == ([], 0, 0)


def _conv64(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(1, 2))[:, ::stride, ::stride]
    return np.tensordot(w, windows, axes=([1, 2, 3], [0, 3, 4])) + b.reshape(-1, 1, 1)


def _reference_scores(data: np.ndarray) -> np.ndarray:
    """The network of the .dat file in float64 numpy, layer by layer (no folding)."""
    x = data[0].astype(np.float64)
    for layer in load_net().layers:
        if layer["type"] == "con":
            x = _conv64(x, layer["weight"].astype(np.float64), layer["bias"], layer["stride_y"], layer["padding_y"])
        elif layer["type"] == "affine":
            x = x * layer["gamma"].reshape(-1, 1, 1) + layer["beta"].reshape(-1, 1, 1)
        else:
            x = np.maximum(x, 0)
    return x


@pytest.mark.data
def test_the_onnx_graph_computes_the_network(tmp_path):
    from facegate.images import load_image

    detector = MmodOnnxDetector(cache_dir=tmp_path)
    image = load_image(data_dir("happyhouse", "images") / "kian.jpg")
    data, _ = tiled_pyramid(image, detector.net)
    scores, _ = detector.score_map(image)
    reference = _reference_scores(data)
    assert scores.shape == reference.shape
    difference = np.abs(scores - reference).max()
    print(f"score map {scores.shape}: max |onnx - float64 reference| {difference:.1e}")
    assert difference < 1e-4


def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    path, info = converted_model(tmp_path)
    assert path.parent == tmp_path and path.name.startswith("mmod_human_face_detector-")
    assert info["source_sha256"][:16] in path.name and info["conversion_seconds"] >= 0
    mtime = path.stat().st_mtime_ns

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(mmod_onnx, "build_model", no_second_conversion)
    again, info_again = converted_model(tmp_path)
    assert again == path and path.stat().st_mtime_ns == mtime and info_again == info
    detector = MmodOnnxDetector(cache_dir=tmp_path)  # a detector reuses the cached file too
    assert detector.path == path and detector.describe()["conversion_seconds"] == info["conversion_seconds"]


def test_default_cache_folder_is_the_resnets(tmp_path, monkeypatch):
    from facegate.models.engines import cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path, _ = converted_model()
    assert path.parent == cache_dir() == tmp_path / "facegate" / "onnx"


def test_threads_and_engine_selection(monkeypatch, tmp_path):
    from facegate.detection.detectors import CnnDetector
    from facegate.errors import UnknownNameError

    monkeypatch.setenv("FACEGATE_ONNX_THREADS", "2")
    assert MmodOnnxDetector(cache_dir=tmp_path).threads == 2
    monkeypatch.delenv("FACEGATE_ONNX_THREADS")
    assert MmodOnnxDetector(cache_dir=tmp_path).threads == 1
    monkeypatch.delenv("FACEGATE_ENGINE", raising=False)
    assert CnnDetector().engine_name() == "onnx"
    monkeypatch.setenv("FACEGATE_ENGINE", "dlib")
    assert CnnDetector().engine_name() == "dlib" and CnnDetector("onnx").engine_name() == "onnx"
    with pytest.raises(UnknownNameError):
        CnnDetector("tensorflow").engine_name()


def test_images_too_small_for_the_network_give_nothing(tmp_path):
    detector = MmodOnnxDetector(cache_dir=tmp_path)
    assert detector(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector(np.full((40, 30), 128, np.uint8)) == []  # grey images are taken as dlib takes them


def real_images() -> list[tuple[str, np.ndarray, int]]:
    """(name, image, upsample): 60 real images of several sizes, the small ones also upsampled."""
    from facegate.images import load_image

    lfw = sorted(data_dir("lfw", "images").glob("*/*.jpg"))[::300][:16]  # 250x250 colour
    orl = sorted(data_dir("orl").glob("s*/*.pgm"))[::17]  # 92x112 grey, 24 images
    yale = sorted(data_dir("yale").glob("subject*"))[::21]  # 320x243 grey GIF, 8 images
    happy = sorted(data_dir("happyhouse", "images").glob("*"))[::2]  # 96x96 colour, 9 images
    examples = data_dir("face_recognition_examples", "examples")
    wild = [examples / "alex-lacamoire.png", examples / "obama_small.jpg", examples / "obama-240p.jpg"]
    plan = [(lfw, [0]), (orl, [0]), (orl[::3], [1]), (yale, [0]), (happy, [1]), (happy[:2], [2]), (wild, [0])]
    return [
        (f"{path.parent.name}/{path.name}@{level}", load_image(path), level)
        for paths, levels in plan
        for path in paths
        for level in levels
    ]


def _same_box(a, b, tolerance: int = 2) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.mark.data
@pytest.mark.slow
def test_onnx_finds_the_same_faces_as_dlib(tmp_path):
    from facegate.resources import mmod_detector

    dlib_detector, onnx_detector = mmod_detector(), MmodOnnxDetector(cache_dir=tmp_path)
    cases = real_images()
    assert len({name.split("@")[0] for name, _, _ in cases}) >= 60
    faces = exact = ties = 0
    worst = 0.0
    for name, image, upsample in cases:
        theirs = [
            ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
            for d in dlib_detector(image, upsample)
        ]
        ours = [(tuple(d[:4]), d.confidence) for d in onnx_detector(image, upsample)]
        assert len(ours) == len(theirs), f"{name}: dlib {theirs}, onnx {ours}"
        for (box, score), (their_box, their_score) in zip(ours, theirs, strict=True):
            faces += 1
            worst = max(worst, abs(score - their_score))
            assert abs(score - their_score) < CONFIDENCE_TOLERANCE, f"{name}: dlib {theirs}, onnx {ours}"
            if box == their_box:
                exact += 1
            elif not _same_box(box, their_box):
                # Two overlapping windows (at neighbouring pyramid levels) within float noise of
                # each other: the NMS keeps whichever sums higher. dlib's window must be there,
                # scored like dlib's, among ours before the suppression.
                ties += 1
                windows = onnx_detector.windows(image, upsample)
                assert any(
                    w[:4] == their_box and abs(w.confidence - their_score) < CONFIDENCE_TOLERANCE for w in windows
                )
    print(f"{len(cases)} runs, {faces} faces: {exact} boxes identical, {ties} near-ties; max |conf diff| {worst:.1e}")
    assert faces >= 60 and exact >= faces - 2


@pytest.mark.data
def test_the_cnn_detector_gives_the_same_faces_on_both_engines():
    from facegate.detection.detectors import CnnDetector
    from facegate.images import load_image

    folder = data_dir("face_recognition_examples", "examples", "knn_examples", "test")
    image = load_image(folder / "kit_with_rose.jpg")
    onnx_faces, dlib_faces = CnnDetector("onnx").detect(image), CnnDetector("dlib").detect(image)
    assert len(onnx_faces) == len(dlib_faces) == 2
    for a, b in zip(onnx_faces, dlib_faces, strict=True):
        assert (a.x, a.y, a.w, a.h) == (b.x, b.y, b.w, b.h)
        assert abs(a.confidence - b.confidence) < CONFIDENCE_TOLERANCE
        np.testing.assert_allclose(a.landmarks, b.landmarks)
