"""nn4.small2 weights: the exercise's CSV folder, Keras HDF5 and PyTorch files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from facegate.errors import ModelUnavailableError  # noqa: E402
from facegate.learn.nets.nn4small2 import NN4Small2  # noqa: E402
from facegate.learn.nets.nn4small2_weights import (  # noqa: E402
    IncompleteWeightsError,
    WeightsError,
    expected_files,
    export_csv,
    format_csv_values,
    load_csv,
    load_h5,
    load_weights,
    parse_csv_values,
)
from tests.conftest import data_dir  # noqa: E402

SHARED_MISSING = [
    "inception_3c_3x3_conv2_w",
    "inception_4e_3x3_conv2_w",
    "inception_5a_1x1_conv_w",
    "inception_5a_3x3_conv2_w",
    "inception_5b_3x3_conv2_w",
]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _random_model(seed: int) -> NN4Small2:
    """A model whose every tensor (BN statistics included) is random and distinct."""
    torch.manual_seed(seed)
    model = NN4Small2()
    with torch.no_grad():
        for _, module in model.named_layers():
            for tensor in (module.weight, module.bias):
                tensor.normal_(0, 0.1)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.1, 3.0)
    return model


def _tensors(model: NN4Small2) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {k: v.clone() for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _assert_same(a: NN4Small2, b: NN4Small2) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[NN4Small2, Path]:
    model = _random_model(1)
    folder = tmp_path_factory.mktemp("csv")
    export_csv(model, folder)
    return model, folder


# --------------------------------------------------------------------------- CSV


def test_expected_files_cover_every_tensor():
    files = expected_files()
    assert len(files) == 224  # 37 conv x 2 + 37 batch norm x 4 + dense x 2
    assert files["conv1_w"] == (64, 3, 7, 7)
    assert files["inception_3a_3x3_bn1_m"] == (96,)
    assert files["dense_w"] == (128, 736)
    assert sum(int(np.prod(s)) for s in files.values()) == 3_743_280


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_float32_text_round_trip_is_exact(values):
    array = np.array(values, dtype=np.float32)
    back = parse_csv_values(format_csv_values(array))
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.uint32), array.view(np.uint32))  # bit for bit, -0.0 included


def test_float32_text_round_trip_on_random_bit_patterns():
    bits = np.random.default_rng(0).integers(0, 2**32, 300_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    extremes = np.array([np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45, -0.0], np.float32)
    values = np.concatenate([values, extremes])
    back = parse_csv_values(format_csv_values(values))
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))


def test_export_then_load_is_bit_exact(exported):
    model, folder = exported
    assert len(list(folder.glob("*.csv"))) == 224
    fresh = NN4Small2()
    report = load_csv(fresh, folder)
    assert report.complete and len(report.loaded) == 224 and not report.unexpected
    _assert_same(model, fresh)


def test_csv_axes_follow_fr_utils(tmp_path):
    """fr_utils reads ``<conv>_w`` as (out, in, kh, kw) and transposes it to Keras'
    (kh, kw, in, out); ``dense_w`` as (128, 736), transposed to (736, 128)."""
    conv = np.arange(128 * 96 * 3 * 3, dtype=np.float32)
    (tmp_path / "inception_3a_3x3_conv2_w.csv").write_text(",".join(map(str, conv.astype(int))) + "\r\n")
    dense = np.arange(128 * 736, dtype=np.float32)
    (tmp_path / "dense_w.csv").write_text(",".join(map(str, dense.astype(int))))
    model = NN4Small2()
    report = load_csv(model, tmp_path, strict=False)
    assert sorted(report.loaded) == ["dense_w", "inception_3a_3x3_conv2_w"] and len(report.missing) == 222
    w = model.inception_3a_3x3_conv2.weight.detach()
    assert w.shape == (128, 96, 3, 3)
    assert float(w[5, 7, 2, 1]) == ((5 * 96 + 7) * 3 + 2) * 3 + 1
    keras_kernel = np.reshape(conv, (128, 96, 3, 3)).transpose(2, 3, 1, 0)  # what fr_utils builds
    assert np.array_equal(w.numpy().transpose(2, 3, 1, 0), keras_kernel)
    dense_weight = model.dense.weight.detach()
    assert float(dense_weight[3, 100]) == 3 * 736 + 100
    assert np.array_equal(dense_weight.numpy().T, np.reshape(dense, (128, 736)).T)


def test_incomplete_folder_is_refused_naming_every_missing_file(exported, tmp_path):
    _, folder = exported
    gone = {"bn2_v.csv", "inception_4a_pool_conv_w.csv", "dense_b.csv"}
    for f in folder.glob("*.csv"):
        if f.name not in gone:
            (tmp_path / f.name).write_bytes(f.read_bytes())
    model = NN4Small2()
    before = _tensors(model)
    with pytest.raises(IncompleteWeightsError) as caught:
        load_csv(model, tmp_path)
    for name in gone:
        assert name in str(caught.value)
    assert sorted(caught.value.missing) == sorted(n[:-4] for n in gone)
    assert isinstance(caught.value, ModelUnavailableError) and caught.value.exit_code == 6
    assert all(torch.equal(before[k], v) for k, v in _tensors(model).items())  # untouched


@pytest.mark.parametrize(
    ("content", "message"),
    [("1,2,3", "has 3 values"), ("0.1,abc,0.3", "not a number"), ("nan," * 63 + "nan", "NaN")],
)
def test_bad_files_are_refused_and_leave_the_model_unchanged(exported, tmp_path, content, message):
    _, folder = exported
    for name in ("conv1_w.csv", "conv1_b.csv"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / "bn1_m.csv").write_text(content)
    model = NN4Small2()
    before = _tensors(model)
    with pytest.raises(WeightsError, match=message):
        load_csv(model, tmp_path, strict=False)
    assert all(torch.equal(before[k], v) for k, v in _tensors(model).items())


@pytest.mark.data
def test_shared_folder_strict_load_names_the_five_missing_files():
    folder = data_dir("happyhouse", "weights")
    with pytest.raises(IncompleteWeightsError) as caught:
        load_csv(NN4Small2(), folder)
    assert sorted(caught.value.missing) == SHARED_MISSING
    for stem in SHARED_MISSING:
        assert f"{stem}.csv" in str(caught.value)


@pytest.mark.data
def test_shared_folder_partial_load_fills_every_present_file():
    folder = data_dir("happyhouse", "weights")
    torch.manual_seed(0)
    model = NN4Small2()
    initial = model.inception_5a_1x1_conv.weight.detach().clone()
    report = load_csv(model, folder, strict=False)
    # 224 tensors - 5 missing = 219 loaded (the data README says 216); two stray copies of
    # inception_5a_3x3_bn1's statistics match no tensor
    assert len(report.loaded) == 219 and sorted(report.missing) == SHARED_MISSING
    assert report.unexpected == ["inception_5a_3x3_conv2_m", "inception_5a_3x3_conv2_v"]
    assert report.missing_layers() == sorted(s[:-2] for s in SHARED_MISSING)
    for stem, shape in expected_files(model).items():
        if stem in SHARED_MISSING:
            continue
        layer, suffix = stem.rsplit("_", 1)
        attr = {"w": "weight", "b": "bias", "m": "running_mean", "v": "running_var"}[suffix]
        values = np.array((folder / f"{stem}.csv").read_text().strip().split(","), dtype=np.float64)
        tensor = getattr(model.get_submodule(layer), attr).detach().numpy()
        assert tensor.shape == shape
        assert np.array_equal(tensor.ravel(), values.astype(np.float32)), stem
    assert torch.equal(model.inception_5a_1x1_conv.weight, initial)  # missing: left as it was
    assert (model.bn1.running_var > 0).all()


# --------------------------------------------------------------------------- HDF5


def _write_keras2(model: NN4Small2, path: Path, wrap: bool, skip: tuple[str, ...] = ()) -> None:
    """Weights in Keras 2's HDF5 layout, written from the Keras side of each convention:
    conv kernels (kh, kw, in, out), dense kernel (in, out), BN gamma/beta/moving stats."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if wrap else f
        names = []
        for name, module in model.named_layers():
            if name in skip:
                continue
            keras_name = "dense_layer" if name == "dense" else name
            names.append(keras_name.encode())
            if isinstance(module, torch.nn.Conv2d):
                arrays = {"kernel": module.weight.detach().numpy().transpose(2, 3, 1, 0), "bias": module.bias}
            elif isinstance(module, torch.nn.BatchNorm2d):
                arrays = {
                    "gamma": module.weight,
                    "beta": module.bias,
                    "moving_mean": module.running_mean,
                    "moving_variance": module.running_var,
                }
            else:
                arrays = {"kernel": module.weight.detach().numpy().T, "bias": module.bias}
            group = root.create_group(keras_name)
            group.attrs["weight_names"] = [f"{keras_name}/{k}:0".encode() for k in arrays]
            for k, v in arrays.items():
                group.create_dataset(f"{keras_name}/{k}:0", data=np.asarray(torch.as_tensor(v).detach()))
        root.attrs["layer_names"] = names


@pytest.mark.parametrize("wrap", [False, True], ids=["save_weights", "model.save"])
def test_keras2_h5_loads_by_layer_name(tmp_path, wrap):
    model = _random_model(2)
    path = tmp_path / "nn4.small2.v1.h5"
    _write_keras2(model, path, wrap)
    fresh = NN4Small2()
    report = load_h5(fresh, path)
    assert report.complete and len(report.loaded) == 224
    _assert_same(model, fresh)


def test_h5_kernel_axes_are_keras(tmp_path):
    model = NN4Small2()
    path = tmp_path / "w.h5"
    _write_keras2(model, path, wrap=False)
    with h5py.File(path, "r+") as f:
        kernel = f["conv1/conv1/kernel:0"]
        assert kernel.shape == (7, 7, 3, 64)
        data = np.zeros(kernel.shape, np.float32)
        data[0, 1, 2, 3] = 7.0
        kernel[...] = data
        dense = f["dense_layer/dense_layer/kernel:0"]
        assert dense.shape == (736, 128)
        data = np.zeros(dense.shape, np.float32)
        data[700, 5] = 3.0
        dense[...] = data
    load_h5(model, path)
    w = model.conv1.weight.detach()
    assert float(w[3, 2, 0, 1]) == 7.0 and float(w.abs().sum()) == 7.0
    assert float(model.dense.weight.detach()[5, 700]) == 3.0


def test_keras3_weights_h5_layout(tmp_path):
    model = _random_model(3)
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        for name, module in model.named_layers():
            tensors = [module.weight.detach().numpy(), module.bias.detach().numpy()]
            if isinstance(module, torch.nn.Conv2d):
                tensors[0] = tensors[0].transpose(2, 3, 1, 0)
            elif isinstance(module, torch.nn.Linear):
                tensors[0] = tensors[0].T
            else:
                tensors += [module.running_mean.numpy(), module.running_var.numpy()]
            for i, t in enumerate(tensors):
                f.create_dataset(f"layers/{name}/vars/{i}", data=t)
    fresh = NN4Small2()
    load_h5(fresh, path)
    _assert_same(model, fresh)


def test_h5_missing_or_misshapen_layers(tmp_path):
    model = _random_model(4)
    path = tmp_path / "partial.h5"
    _write_keras2(model, path, wrap=True, skip=("bn3", "inception_5b_1x1_conv"))
    fresh = NN4Small2()
    with pytest.raises(IncompleteWeightsError) as caught:
        load_h5(fresh, path)
    assert {"bn3/gamma", "bn3/moving_variance", "inception_5b_1x1_conv/kernel"} <= set(caught.value.missing)
    report = load_h5(fresh, path, strict=False)
    assert report.missing_layers() == ["bn3", "inception_5b_1x1_conv"]
    assert torch.equal(fresh.conv3.weight, model.conv3.weight)
    with h5py.File(path, "r+") as f:
        del f["model_weights/conv2/conv2/bias:0"]
        f.create_dataset("model_weights/conv2/conv2/bias:0", data=np.zeros(63, np.float32))
    with pytest.raises(WeightsError, match="conv2/bias"):
        load_h5(NN4Small2(), path, strict=False)
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(WeightsError, match="HDF5"):
        load_h5(NN4Small2(), tmp_path / "junk.h5")


# --------------------------------------------------------------------------- any


def test_load_weights_dispatches_on_the_path(tmp_path):
    model = _random_model(5)
    torch.save(model.state_dict(), tmp_path / "nn4.pt")
    fresh = NN4Small2()
    load_weights(fresh, tmp_path / "nn4.pt")
    _assert_same(model, fresh)
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "dense_b.csv").write_text(format_csv_values(model.dense.bias.detach().numpy()))
    report = load_weights(fresh, tmp_path / "csv", strict=False)
    assert report.loaded == ["dense_b"] and len(report.missing) == 223
    with pytest.raises(WeightsError, match=r"no nn4\.small2 weights"):
        load_weights(NN4Small2(), tmp_path / "absent.h5")
    (tmp_path / "w.bin").write_bytes(b"\0")
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_weights(NN4Small2(), tmp_path / "w.bin")
