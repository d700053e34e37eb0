"""ArcFace-style ONNX models a user brings (``arcface-onnx``, ``insightface-w600k-*``, ``sface``).

The real files are large and never downloaded, so every test builds a tiny network of
the same shape with the ``onnx`` package (112x112 image in, one vector out; a strided
Conv, ReLU, Flatten and Gemm with fixed weights) and checks facegate against a numpy
re-computation of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facegate.alignment_arcface import (
    ARCFACE_TEMPLATE,
    align_arcface,
    arcface_points,
    similarity_matrix,
    template,
)
from facegate.decisions.table import ThresholdUnavailableError
from facegate.errors import ModelUnavailableError
from facegate.models import MODELS, get_model
from facegate.models.arcface import ArcFaceOnnx

from .conftest import data_dir

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

KERNEL, FILTERS = 16, 8
ENVS = (
    "FACEGATE_ARCFACE_WEIGHTS",
    "FACEGATE_W600K_R50_WEIGHTS",
    "FACEGATE_W600K_MBF_WEIGHTS",
    "FACEGATE_SFACE_WEIGHTS",
    "INSIGHTFACE_HOME",
)
NO_CALIBRATION = (
    "no calibrated threshold for model 'arcface-onnx' with metric 'cosine'; "  # decisions.table's message
    "pass threshold=... or run `facegate calibrate`"
)


def weights(dim: int, seed: int = 0, channels: int = 3, sides: tuple[int, int] = (112, 112)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = FILTERS * (sides[0] // KERNEL) * (sides[1] // KERNEL)
    return {
        "conv_w": rng.normal(0, 0.05, (FILTERS, channels, KERNEL, KERNEL)).astype(np.float32),
        "conv_b": rng.normal(0, 0.5, FILTERS).astype(np.float32),
        "fc_w": rng.normal(0, 0.2, (cells, dim)).astype(np.float32),
        "fc_b": rng.normal(0, 1.0, dim).astype(np.float32),
    }


def tiny_onnx(
    path: Path,
    dim: int = 16,
    batch: int | str = "N",
    shape: tuple[int, int, int] = (3, 112, 112),
    nhwc: bool = False,
    normalises: bool = False,
    output_shape: list | None = None,
    seed: int = 0,
) -> Path:
    """A 112x112 face-recognition-shaped ONNX file: Conv(16x16, stride 16)-ReLU-Flatten-Gemm to ``dim``."""
    channels, sides = (shape[2], shape[:2]) if nhwc else (shape[0], shape[1:])
    w = weights(dim, seed, channels, sides)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes, x = [], "input.1"
    if nhwc:
        nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2], name="Transpose_0"))
        x = "nchw"
    if normalises:  # an MXNet-style export: (x - 127.5) * (1 / 127.5) inside the graph, nodes named as MXNet does
        inits += [numpy_helper.from_array(np.float32(127.5), "m"), numpy_helper.from_array(np.float32(1 / 127.5), "s")]
        nodes.append(helper.make_node("Sub", [x, "m"], ["centred"], name="_minus0"))
        nodes.append(helper.make_node("Mul", ["centred", "s"], ["scaled"], name="_mul0"))
        x = "scaled"
    nodes += [
        helper.make_node("Conv", [x, "conv_w", "conv_b"], ["c"], kernel_shape=[KERNEL] * 2, strides=[KERNEL] * 2),
        helper.make_node("Relu", ["c"], ["r"], name="Relu_1"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="Flatten_2"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["embedding"], name="Gemm_3"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, *shape])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, output_shape or [batch, dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def reference(chips: list[np.ndarray], mean: float, std: float, bgr: bool = False, dim: int = 16) -> np.ndarray:
    """The tiny network in numpy, on RGB uint8 chips preprocessed as stated."""
    w = weights(dim)
    x = np.stack(chips).astype(np.float64)
    if bgr:
        x = x[..., ::-1]
    x = ((x - mean) / std).transpose(0, 3, 1, 2)  # NCHW
    n, cells = len(x), 112 // KERNEL
    patches = x.reshape(n, 3, cells, KERNEL, cells, KERNEL)
    conv = np.einsum("nciajb,kcab->nkij", patches, w["conv_w"]) + w["conv_b"][None, :, None, None]
    out = np.maximum(conv, 0).reshape(n, -1) @ w["fc_w"] + w["fc_b"]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def random_chips(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    """No model file from the machine or an earlier test: a bare HOME, no variables, no shared instances."""
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "no-thresholds.json"))
    monkeypatch.chdir(tmp_path)
    MODELS.clear_shared()
    yield
    MODELS.clear_shared()


@pytest.fixture
def tiny(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "models" / "my_arcface.onnx")


# -- registry and finding the file ------------------------------------------------------
def test_the_family_is_registered_with_cosine_on_unit_vectors():
    for name in ("arcface-onnx", "insightface-w600k-r50", "insightface-w600k-mbf", "sface"):
        cls = MODELS.get(name)
        assert issubclass(cls, ArcFaceOnnx) and cls.name == name
        assert (cls.default_metric, cls.normalized, cls.faces) == ("cosine", True, True)
    assert [MODELS.get(n).weights_env for n in ("insightface-w600k-r50", "insightface-w600k-mbf", "sface")] == [
        "FACEGATE_W600K_R50_WEIGHTS",
        "FACEGATE_W600K_MBF_WEIGHTS",
        "FACEGATE_SFACE_WEIGHTS",
    ]


def test_found_through_weights_with_the_files_input_and_output(tiny):
    model = get_model("arcface-onnx", weights=str(tiny))
    assert model.weights == tiny
    assert (model.dim, model.chip_size, model.layout, model.input_name) == (16, 112, "NCHW", "input.1")
    assert (model.prep.mean, model.prep.std, model.prep.order) == (127.5, 127.5, "rgb")  # insightface's rule
    assert get_model("arcface-onnx", weights=str(tiny)) is model
    other = tiny_onnx(tiny.parent / "wide.onnx", dim=40)
    assert MODELS.create("arcface-onnx", weights=str(other)).dim == 40


def test_found_through_the_environment_variable(monkeypatch, tiny):
    monkeypatch.setenv("FACEGATE_ARCFACE_WEIGHTS", str(tiny))
    assert get_model("arcface-onnx").weights == tiny
    monkeypatch.setenv("FACEGATE_ARCFACE_WEIGHTS", str(tiny.parent / "gone.onnx"))
    with pytest.raises(ModelUnavailableError) as caught:
        MODELS.create("arcface-onnx")
    assert str(caught.value) == (
        f"arcface-onnx: $FACEGATE_ARCFACE_WEIGHTS names {tiny.parent / 'gone.onnx'}, which does not exist"
    )


def test_found_in_insightfaces_folder_and_insightface_home_first(monkeypatch, tmp_path):
    home = tmp_path / "home"
    r50 = tiny_onnx(home / ".insightface" / "models" / "buffalo_l" / "w600k_r50.onnx")
    assert MODELS.create("insightface-w600k-r50").weights == r50
    mbf = tiny_onnx(home / ".insightface" / "models" / "buffalo_sc" / "w600k_mbf.onnx")
    assert MODELS.create("insightface-w600k-mbf").weights == mbf
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "elsewhere"))
    assert MODELS.create("insightface-w600k-r50").weights == r50  # not there: the usual folder still counts
    moved = tiny_onnx(tmp_path / "elsewhere" / "models" / "buffalo_m" / "w600k_r50.onnx")
    assert MODELS.create("insightface-w600k-r50").weights == moved


def test_weights_before_the_variable_before_the_folders(monkeypatch, tmp_path):
    folder = tiny_onnx(tmp_path / "home" / ".insightface" / "models" / "buffalo_l" / "w600k_r50.onnx")
    env = tiny_onnx(tmp_path / "env" / "w600k_r50.onnx")
    given = tiny_onnx(tmp_path / "given" / "w600k_r50.onnx")
    assert MODELS.create("insightface-w600k-r50").weights == folder
    monkeypatch.setenv("FACEGATE_W600K_R50_WEIGHTS", str(env))
    assert MODELS.create("insightface-w600k-r50").weights == env
    assert MODELS.create("insightface-w600k-r50", weights=str(given)).weights == given


def test_sface_is_found_in_the_current_folder(tmp_path):
    path = tiny_onnx(tmp_path / "face_recognition_sface_2021dec.onnx", dim=128, batch=1)
    model = MODELS.create("sface")
    assert model.weights == path and model.dim == 128 and model.fixed_batch == 1
    assert (model.prep.mean, model.prep.std, model.prep.order) == (0.0, 1.0, "rgb")


def test_a_missing_file_names_every_place_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "ih"))
    with pytest.raises(ModelUnavailableError) as caught:
        get_model("insightface-w600k-r50")
    home = tmp_path / "home" / ".insightface" / "models"
    assert caught.value.exit_code == 6
    assert str(caught.value) == (
        "insightface-w600k-r50 needs insightface's w600k_r50.onnx (in the buffalo_l and buffalo_m model packs), "
        "and facegate ships none and downloads none. Looked at: weights= (not given); "
        "$FACEGATE_W600K_R50_WEIGHTS (not set); "
        f"{tmp_path / 'ih' / 'models' / 'buffalo_l' / 'w600k_r50.onnx'} (no such file); "
        f"{tmp_path / 'ih' / 'models' / 'buffalo_m' / 'w600k_r50.onnx'} (no such file); "
        f"{home / 'buffalo_l' / 'w600k_r50.onnx'} (no such file); "
        f"{home / 'buffalo_m' / 'w600k_r50.onnx'} (no such file). "
        "Give the file as weights=PATH (get_model('insightface-w600k-r50', weights=PATH)) or set "
        "FACEGATE_W600K_R50_WEIGHTS=PATH (what the CLI, verify and Gallery read), "
        f"or put it at {tmp_path / 'ih' / 'models' / 'buffalo_l' / 'w600k_r50.onnx'}."
    )
    with pytest.raises(ModelUnavailableError) as caught:
        MODELS.create("sface")
    assert f"{tmp_path / 'face_recognition_sface_2021dec.onnx'} (no such file)" in str(caught.value)
    with pytest.raises(ModelUnavailableError) as caught:
        MODELS.create("arcface-onnx")
    assert "Looked at: weights= (not given); $FACEGATE_ARCFACE_WEIGHTS (not set). Give the file" in str(caught.value)


def test_a_file_that_is_no_onnx_model_or_has_the_wrong_input_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelUnavailableError, match=r"^arcface-onnx: .*junk\.onnx is not an ONNX model ONNX Runtime"):
        MODELS.create("arcface-onnx", weights=str(junk))
    with pytest.raises(ModelUnavailableError, match="which is not a file"):
        MODELS.create("arcface-onnx", weights=str(tmp_path))
    for shape in [(1, 112, 112), (3, 100, 100), (3, 112, 96)]:
        bad = tiny_onnx(tmp_path / f"bad{shape[1]}x{shape[2]}c{shape[0]}.onnx", shape=shape)
        with pytest.raises(ModelUnavailableError) as caught:
            MODELS.create("arcface-onnx", weights=str(bad))
        assert str(caught.value) == (
            f"arcface-onnx: {bad} takes tensor(float) of shape ['N', {shape[0]}, {shape[1]}, {shape[2]}]; "
            "expected a float image batch (N, 3, 112, 112) or (N, 112, 112, 3) (sides a multiple of 112 or 128)"
        )


# -- what runs ----------------------------------------------------------------------------
def test_embeddings_equal_the_network_on_the_preprocessed_chip(tiny):
    model = MODELS.create("arcface-onnx", weights=str(tiny))
    chips = random_chips(5)
    x = model.preprocess(chips)
    assert x.shape == (5, 3, 112, 112) and x.dtype == np.float32
    assert np.array_equal(x[2, 1], (chips[2][:, :, 1].astype(np.float32) - 127.5) / 127.5)  # G plane, NCHW
    vectors = model.embed(chips)
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference(chips, 127.5, 127.5), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(vectors, reference(chips, 127.5, 127.5, bgr=True), atol=1e-2)  # the order matters
    assert model.embed([]).shape == (0, 16)


def test_options_set_mean_std_and_channel_order(tiny):
    model = MODELS.create("arcface-onnx", weights=str(tiny), mean="100", std="50", channels="BGR")
    assert (model.prep.mean, model.prep.std, model.prep.order) == (100.0, 50.0, "bgr")
    chips = random_chips(3, seed=4)
    np.testing.assert_allclose(model.embed(chips), reference(chips, 100, 50, bgr=True), atol=2e-5)
    with pytest.raises(ValueError, match="channels must be 'rgb' or 'bgr'"):
        MODELS.create("arcface-onnx", weights=str(tiny), channels="rbg")


def test_known_file_names_and_insightfaces_rule_choose_the_preprocessing(tmp_path):
    sface = tiny_onnx(tmp_path / "a" / "face_recognition_sface_2021dec.onnx")
    chips = random_chips(2, seed=5)
    np.testing.assert_allclose(
        MODELS.create("arcface-onnx", weights=str(sface)).embed(chips), reference(chips, 0, 1), atol=2e-5
    )
    # a graph that normalises inside itself (MXNet's _minus/_mul nodes) is fed raw pixels, as insightface does,
    # and then gives what the plain graph gives on normalised pixels
    inside = MODELS.create("arcface-onnx", weights=str(tiny_onnx(tmp_path / "mx.onnx", normalises=True)))
    assert (inside.prep.mean, inside.prep.std) == (0.0, 1.0)
    np.testing.assert_allclose(inside.embed(chips), reference(chips, 127.5, 127.5), atol=2e-5)
    # the named model's preprocessing holds whatever its file is called
    renamed = tiny_onnx(tmp_path / "b" / "my_sface.onnx")
    assert MODELS.create("sface", weights=str(renamed)).prep.mean == 0.0


def test_nhwc_input_fixed_batch_and_symbolic_output(tmp_path):
    chips = random_chips(3, seed=6)
    nhwc = MODELS.create("arcface-onnx", weights=str(tiny_onnx(tmp_path / "n.onnx", shape=(112, 112, 3), nhwc=True)))
    assert nhwc.layout == "NHWC" and nhwc.preprocess(chips).shape == (3, 112, 112, 3)
    np.testing.assert_allclose(nhwc.embed(chips), reference(chips, 127.5, 127.5), atol=2e-5)
    one = MODELS.create("arcface-onnx", weights=str(tiny_onnx(tmp_path / "one.onnx", batch=1)))
    assert one.fixed_batch == 1
    np.testing.assert_allclose(one.embed(chips), reference(chips, 127.5, 127.5), atol=2e-5)
    symbolic = tiny_onnx(tmp_path / "sym.onnx", dim=24, output_shape=["N", "D"])
    assert MODELS.create("arcface-onnx", weights=str(symbolic)).dim == 24


def test_flip_tta_averages_the_chip_and_its_mirror(tiny):
    model = MODELS.create("arcface-onnx", weights=str(tiny))
    chips = random_chips(2, seed=7)
    mirrored = [c[:, ::-1] for c in chips]
    both = reference(chips, 127.5, 127.5) + reference(mirrored, 127.5, 127.5)
    expected = both / np.linalg.norm(both, axis=1, keepdims=True)
    np.testing.assert_allclose(model.embed_tta(chips), expected, atol=2e-5)


# -- alignment -----------------------------------------------------------------------------
def synthetic_landmarks(five: np.ndarray) -> np.ndarray:
    """68 landmarks whose eye centres, nose tip and mouth corners are ``five``."""
    points = np.zeros((68, 2), np.float32)
    ring = np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]], np.float32)  # centred on 0
    points[36:42] = five[0] + ring
    points[42:48] = five[1] + ring
    points[30], points[48], points[54] = five[2], five[3], five[4]
    return points


def test_the_five_points_come_from_dlibs_68_in_template_order():
    five = np.array([[10, 20], [40, 21], [25, 35], [14, 50], [37, 49]], np.float32)
    assert np.array_equal(arcface_points(synthetic_landmarks(five)), five)
    assert np.array_equal(template(112), ARCFACE_TEMPLATE)
    assert np.allclose(template(224), ARCFACE_TEMPLATE * 2)
    assert np.allclose(template(128), ARCFACE_TEMPLATE + np.array([8, 0]))
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        template(100)


def test_alignment_puts_the_points_on_the_template():
    # the face sits in a 400x400 image turned 12 degrees, 2.3 times the template's size, moved by (60, 45)
    angle, scale, shift = math.radians(12), 2.3, np.array([60.0, 45.0])
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    in_image = ARCFACE_TEMPLATE @ rotation.T + shift
    image = np.zeros((400, 400, 3), np.uint8)
    for x, y in in_image:
        image[int(round(y)) - 3 : int(round(y)) + 4, int(round(x)) - 3 : int(round(x)) + 4] = 255
    chip, matrix = align_arcface(image, synthetic_landmarks(in_image.astype(np.float32)))
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    inverse = np.linalg.inv(rotation)
    np.testing.assert_allclose(matrix[:, :2], inverse, atol=1e-5)
    np.testing.assert_allclose(matrix[:, 2], -inverse @ shift, atol=1e-4)
    grey = chip[:, :, 0].astype(np.float64)
    for x, y in ARCFACE_TEMPLATE:  # each dot's centre of mass, in a window around where it belongs
        x0, y0 = int(x) - 6, int(y) - 6
        window = grey[y0 : y0 + 13, x0 : x0 + 13]
        ys, xs = np.mgrid[y0 : y0 + 13, x0 : x0 + 13]
        assert window.sum() > 0
        centre = np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()
        assert np.linalg.norm(centre - [x, y]) < 1.0  # the dots were drawn at rounded pixels


def test_the_similarity_is_umeyamas_as_skimage_estimates_it():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, (5, 2))
    dst = ARCFACE_TEMPLATE.astype(np.float64)
    transform = pytest.importorskip("skimage.transform").SimilarityTransform
    expected = transform.from_estimate(src, dst).params if hasattr(transform, "from_estimate") else None
    if expected is None:
        tform = transform()
        tform.estimate(src, dst)
        expected = tform.params
    np.testing.assert_allclose(similarity_matrix(src, dst), expected[:2], atol=1e-9)


@pytest.mark.data
def test_real_faces_land_on_the_template():
    """On 167 LFW faces (hog boxes, dlib's 68 points) the five points, mapped by the
    alignment, average within 2.5 px of the template, never mirrored. (Over 498 faces
    the average offsets are 1.3 px for the eyes, 0.1 px for the nose tip and 1.9 px for
    the mouth corners: where dlib puts them against where ArcFace's detectors do.)"""
    from facegate.alignment_openface import landmarks_68
    from facegate.images import load_image
    from facegate.pipeline import detect_faces

    paths = sorted(data_dir("lfw", "images").glob("*/*.jpg"))[::30]
    residuals = []
    for path in paths:
        image = load_image(str(path))
        faces = detect_faces(image)
        if not faces:
            continue
        landmarks = landmarks_68(image, faces[0])
        five = arcface_points(landmarks)
        _, matrix = align_arcface(image, landmarks)
        mapped = five @ matrix[:, :2].T + matrix[:, 2]
        assert mapped[0, 0] < mapped[1, 0] and mapped[3, 0] < mapped[4, 0]
        residuals.append(mapped - ARCFACE_TEMPLATE)
    assert len(residuals) == 167
    bias = np.linalg.norm(np.mean(residuals, axis=0), axis=1)
    assert bias.max() < 2.5, bias


# -- end to end ----------------------------------------------------------------------------
@pytest.fixture
def lfw_pair() -> tuple[Path, Path]:
    images = data_dir("lfw", "images")
    return images / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", images / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"


@pytest.mark.data
def test_represent_gives_a_unit_vector_of_the_files_length(monkeypatch, tiny, lfw_pair):
    from facegate.images import load_image
    from facegate.pipeline import represent

    monkeypatch.setenv("FACEGATE_ARCFACE_WEIGHTS", str(tiny))
    faces = represent(str(lfw_pair[0]), "arcface-onnx", "hog")
    assert len(faces) == 1 and faces[0].model == "arcface-onnx"
    vector = faces[0].embedding
    assert vector.shape == (16,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-6
    model = get_model("arcface-onnx")
    chip = model.chip(load_image(str(lfw_pair[0])), faces[0].facial_area)
    assert chip.shape == (112, 112, 3)
    both = reference([chip], 127.5, 127.5) + reference([chip[:, ::-1]], 127.5, 127.5)  # the pipeline's default TTA
    np.testing.assert_allclose(vector, both[0] / np.linalg.norm(both[0]), atol=2e-5)


@pytest.mark.data
def test_without_calibration_verify_and_the_gallery_say_so(monkeypatch, tmp_path, tiny, lfw_pair):
    from facegate.gallery import Gallery
    from facegate.verification import verify

    monkeypatch.setenv("FACEGATE_ARCFACE_WEIGHTS", str(tiny))
    a, b = (str(p) for p in lfw_pair)
    with pytest.raises(ThresholdUnavailableError) as caught:
        verify(a, b, model_name="arcface-onnx")
    assert str(caught.value) == NO_CALIBRATION and caught.value.exit_code == 2
    result = verify(a, b, model_name="arcface-onnx", threshold=2.0)  # a raw threshold needs no calibration
    assert (result.verified, result.threshold, result.similarity_metric, result.model) == (
        True,
        2.0,
        "cosine",
        "arcface-onnx",
    )
    with Gallery(tmp_path / "g.sqlite", model_name="arcface-onnx") as gallery:
        assert gallery.scoring.unavailable == NO_CALIBRATION and gallery.metric_name == "cosine"
        gallery.enroll("aaron", [a])
        assert len(gallery) == 1 and gallery.template_count == 1
        assert gallery.state().warnings == [NO_CALIBRATION]
        with pytest.raises(ThresholdUnavailableError) as caught:
            gallery.identify(b)
        assert str(caught.value) == NO_CALIBRATION
