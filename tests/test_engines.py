"""dlib's face ResNet on ONNX Runtime: the parse of dlib's file, the conversion, the equivalence."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from facegate.errors import UnknownNameError
from facegate.models.dlib_format import DlibFormatError, Reader, load_network
from facegate.models.engines import DEFAULT_ENGINE, ENGINES, SOURCE, OnnxEngine, converted_model, get_engine
from facegate.resources import model_file

from .conftest import data_dir


def test_dlib_integers_strings_and_floats():
    ints = [0x00, 0x01, 0x05, 0x81, 0x05, 0x02, 0x00, 0x01]  # 0, 5, -5, 256: a control byte, then magnitude bytes
    r = Reader(bytes([*ints, 0x01, 0x03]) + b"abc" + bytes([0x01, 0x03, 0x81, 0x01]))
    assert [r.int(), r.int(), r.int(), r.int()] == [0, 5, -5, 256]
    assert r.string() == "abc"
    assert r.double() == 1.5  # mantissa 3, exponent -1
    with pytest.raises(DlibFormatError, match="unexpected end"):
        r.int()


def test_the_whole_file_is_read_into_the_resnet():
    net = load_network(model_file(SOURCE))
    assert net["consumed"] == net["bytes"] == model_file(SOURCE).stat().st_size
    kinds = collections.Counter(layer["type"] for layer in net["layers"])
    assert kinds == {
        "con": 29, "affine": 29, "relu": 29, "tag": 18, "add_prev": 14, "avg_pool": 5,
        "skip": 4, "input_rgb_image_sized": 1, "max_pool": 1, "fc": 1,
    }  # fmt: skip
    assert net["layers"][-1]["weight"].shape == (256, 128)
    with pytest.raises(DlibFormatError):
        load_network(model_file(SOURCE).read_bytes()[:1000])


def test_conversion_is_cached_under_the_sources_sha256(tmp_path):
    path, info = converted_model(tmp_path)
    assert path.name.startswith("dlib_face_recognition_resnet_model_v1-") and path.stat().st_size > 20_000_000
    assert info["source_sha256"][:16] in path.name and info["conversion_seconds"] >= 0
    mtime = path.stat().st_mtime_ns
    again, info_again = converted_model(tmp_path)
    assert again == path and path.stat().st_mtime_ns == mtime and info_again == info


def test_engine_selection(monkeypatch):
    assert DEFAULT_ENGINE == "onnx" and set(ENGINES.names()) == {"dlib", "onnx"}
    monkeypatch.setenv("FACEGATE_ENGINE", "dlib")
    assert get_engine().name == "dlib"
    monkeypatch.setenv("FACEGATE_ONNX_THREADS", "2")
    assert get_engine("onnx").threads == 2
    with pytest.raises(UnknownNameError):
        get_engine("tensorflow")


def real_chips() -> list[np.ndarray]:
    """Aligned chips of real faces: LFW, ORL and the Happy House photos (at least 200)."""
    from facegate.images import load_image
    from facegate.models import get_model
    from facegate.pipeline import detect_faces

    model = get_model("dlib-resnet")
    lfw = sorted(data_dir("lfw", "images").glob("*/*.jpg"))[:130]
    orl = sorted(data_dir("orl").glob("s*/*.pgm"))[::5][:60]
    happy = sorted(data_dir("happyhouse", "images").glob("*.jpg"))
    chips = []
    for path in [*lfw, *orl, *happy]:
        image = load_image(path)
        faces = detect_faces(image)
        if faces:
            chips.append(model.chip(image, faces[0]))
    return chips


@pytest.mark.data
@pytest.mark.slow
def test_onnx_descriptors_equal_dlibs():
    chips = real_chips()
    assert len(chips) >= 200
    dlib = get_engine("dlib").descriptors(chips)
    onnx = OnnxEngine().descriptors(chips)  # one batched call
    difference = np.abs(onnx - dlib).max()
    print(f"{len(chips)} chips: max abs difference {difference:.2e}")
    assert difference <= 1e-4
    a, b = onnx.astype(np.float64), dlib.astype(np.float64)
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 1 - 1e-10


def test_an_unwritable_cache_falls_back_to_the_temporary_folder(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    path, _ = converted_model()
    assert path.parent.name == "facegate-onnx" and path.is_file()
    from facegate.errors import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="cannot write the converted model"):
        converted_model(blocked / "sub")
