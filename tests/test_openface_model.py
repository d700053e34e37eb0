"""The registered ``openface-nn4small2`` embedding model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facegate.errors import ModelUnavailableError
from facegate.learn.models.openface import WEIGHTS_ENV, OpenFaceNN4Small2, as_bool
from facegate.models import MODELS
from tests.conftest import data_dir


def test_registered_and_imported_without_torch():
    assert "openface-nn4small2" in MODELS
    code = "import sys, facegate.learn.models.openface, facegate.models; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_refuses_to_run_without_weights(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(ModelUnavailableError) as caught:
        MODELS.create("openface-nn4small2")
    message = str(caught.value)
    assert WEIGHTS_ENV in message and "allow_random" in message and "nn4.small2.v1" in message
    assert caught.value.exit_code == 6


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelUnavailableError, match=r"facegate\[train\]"):
        OpenFaceNN4Small2(allow_random=True)


def test_as_bool_reads_cli_strings():
    assert as_bool("1") and as_bool("true") and as_bool("Yes") and as_bool(True)
    assert not as_bool("0") and not as_bool("false") and not as_bool(False)
    with pytest.raises(ValueError):
        as_bool("maybe")


@pytest.fixture(scope="module")
def torch():
    """torch (the tests that need it skip without it), one thread while they run."""
    module = pytest.importorskip("torch")
    saved = module.get_num_threads()
    module.set_num_threads(1)
    yield module
    module.set_num_threads(saved)


@pytest.fixture(scope="module")
def random_model(torch) -> OpenFaceNN4Small2:
    torch.manual_seed(0)
    return OpenFaceNN4Small2(allow_random="true", threads=1)


def test_random_weights_give_unit_128d_vectors_from_96px_chips(random_model):
    rng = np.random.default_rng(0)
    chips = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(3)]
    vectors = random_model.embed(chips)
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert random_model.embed([]).shape == (0, 128)
    grey_big = rng.integers(0, 256, (150, 150), dtype=np.uint8)
    assert random_model.embed([grey_big]).shape == (1, 128)
    assert (random_model.name, random_model.dim, random_model.default_metric) == (
        "openface-nn4small2",
        128,
        "euclidean",
    )


def test_weights_from_the_environment(monkeypatch, tmp_path, torch):
    from facegate.learn.nets.nn4small2 import NN4Small2, to_input

    torch.manual_seed(1)
    net = NN4Small2().eval()
    torch.save(net.state_dict(), tmp_path / "nn4.pt")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nn4.pt"))
    model = MODELS.create("openface-nn4small2", threads="1")
    chips = list(np.random.default_rng(2).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8))
    with torch.no_grad():
        expected = net(to_input(chips)).numpy()
    assert np.allclose(model.embed(chips), expected, atol=1e-5)
    assert model.weights == str(tmp_path / "nn4.pt")


@pytest.mark.data
def test_shared_incomplete_weights_need_strict_false(torch):
    from facegate.learn.nets.nn4small2_weights import IncompleteWeightsError

    folder = data_dir("happyhouse", "weights")
    with pytest.raises(IncompleteWeightsError, match=r"inception_5a_1x1_conv_w\.csv"):
        OpenFaceNN4Small2(weights=str(folder))
    with pytest.warns(UserWarning, match="inception_5b_3x3_conv2"):
        model = OpenFaceNN4Small2(weights=str(folder), strict="false", threads=1)
    assert model.embed([np.zeros((96, 96, 3), np.uint8)]).shape == (1, 128)


@pytest.mark.data
def test_chip_is_the_openface_alignment(random_model):
    from facegate.detection import get_detector
    from facegate.images import load_image

    image = load_image(data_dir("face_recognition_examples") / "tests" / "test_images" / "obama.jpg")
    face = get_detector("hog").detect(image)[0]
    chip = random_model.chip(image, face)
    assert chip.shape == (96, 96, 3) and chip.dtype == np.uint8
    assert random_model.embed([chip]).shape == (1, 128)
