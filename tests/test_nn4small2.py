"""nn4.small2: the exercise's architecture, parameter counts and input conventions."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.nn import functional as F  # noqa: E402

from facegate.learn.nets.nn4small2 import (  # noqa: E402
    KERAS_NON_TRAINABLE,
    KERAS_TOTAL_PARAMS,
    STAGES,
    NN4Small2,
    fold_batch_norm,
    keras_param_counts,
    to_input,
)
from tests.conftest import data_dir  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _randomised(seed: int = 0, **kwargs) -> NN4Small2:
    """A model whose batch norms do something (random statistics, scales and shifts)."""
    torch.manual_seed(seed)
    model = NN4Small2(**kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.3, 3.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> NN4Small2:
    return _randomised()


def test_parameter_counts_match_keras():
    total, non_trainable = keras_param_counts(NN4Small2())
    assert (total, non_trainable) == (KERAS_TOTAL_PARAMS, KERAS_NON_TRAINABLE) == (3_743_280, 9_312)
    trainable = sum(p.numel() for p in NN4Small2().parameters() if p.requires_grad)
    assert trainable == 3_743_280 - 9_312


def test_layer_names_are_the_exercise_names():
    names = [name for name, _ in NN4Small2().named_layers()]
    assert names[:6] == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"]
    for expected in ("inception_3a_1x1_conv", "inception_3a_3x3_bn1", "inception_4e_5x5_conv2", "dense"):
        assert expected in names
    assert len(names) == 75 and len(set(names)) == 75
    model = NN4Small2()
    assert sorted(n for s in STAGES for n in model.stage_layers(s)) == sorted(names)


def test_output_is_m_by_128_unit_vectors(model):
    x = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, 128) and y.dtype == torch.float32
    assert torch.allclose(y.norm(dim=1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(y[0], y[1])


def test_input_must_be_channels_first_96(model):
    with pytest.raises(ValueError, match="channels-last"):
        model(torch.rand(2, 96, 96, 3))
    with pytest.raises(ValueError, match=r"\(m, 3, 96, 96\)"):
        model(torch.rand(2, 3, 64, 64))


def _keras_reference(m: NN4Small2, x, lrn_axis: int = -1):
    """A literal transcription of the exercise's ``faceRecoModel`` (channels first):
    explicit ZeroPadding2D, 'valid' convolutions and pools, BN with epsilon 0.00001,
    tf.nn.lrn (radius 5) computed naively, L2 pools as sqrt(9 * avg(x**2))."""

    def conv_bn(x, conv, bn):
        c, b = m.get_submodule(conv), m.get_submodule(bn)
        y = F.conv2d(x, c.weight, c.bias, stride=c.stride)
        y = (y - b.running_mean[:, None, None]) / torch.sqrt(b.running_var[:, None, None] + 0.00001)
        return torch.relu(y * b.weight[:, None, None] + b.bias[:, None, None])

    def zpad(x, top, bottom, left, right):
        return F.pad(x, (left, right, top, bottom))

    def lrn(x):
        sq, out = x * x, torch.empty_like(x)
        n = x.shape[lrn_axis]
        for d in range(n):
            window = sq.narrow(lrn_axis, max(0, d - 5), min(n, d + 6) - max(0, d - 5)).sum(lrn_axis)
            out.select(lrn_axis, d).copy_(x.select(lrn_axis, d) / (1 + 1e-4 * window) ** 0.75)
        return out

    def l2pool(x):
        return torch.sqrt(F.avg_pool2d(x**2, 3, 3) * 9)

    def two(x, p, k, pad):  # conv2d_bn with cv2_out: 1x1 -> pad -> kxk
        y = conv_bn(x, f"{p}_{k}_conv1", f"{p}_{k}_bn1")
        return conv_bn(zpad(y, pad, pad, pad, pad), f"{p}_{k}_conv2", f"{p}_{k}_bn2")

    x = conv_bn(zpad(x, 3, 3, 3, 3), "conv1", "bn1")
    x = lrn(F.max_pool2d(zpad(x, 1, 1, 1, 1), 3, 2))
    x = conv_bn(x, "conv2", "bn2")
    x = lrn(conv_bn(zpad(x, 1, 1, 1, 1), "conv3", "bn3"))
    x = F.max_pool2d(zpad(x, 1, 1, 1, 1), 3, 2)
    # 3a
    pool = zpad(conv_bn(F.max_pool2d(x, 3, 2), "inception_3a_pool_conv", "inception_3a_pool_bn"), 3, 4, 3, 4)
    one = conv_bn(x, "inception_3a_1x1_conv", "inception_3a_1x1_bn")
    x = torch.cat([two(x, "inception_3a", "3x3", 1), two(x, "inception_3a", "5x5", 2), pool, one], 1)
    # 3b
    pool = zpad(conv_bn(l2pool(x), "inception_3b_pool_conv", "inception_3b_pool_bn"), 4, 4, 4, 4)
    one = conv_bn(x, "inception_3b_1x1_conv", "inception_3b_1x1_bn")
    x = torch.cat([two(x, "inception_3b", "3x3", 1), two(x, "inception_3b", "5x5", 2), pool, one], 1)
    # 3c
    pool = zpad(F.max_pool2d(x, 3, 2), 0, 1, 0, 1)
    x = torch.cat([two(x, "inception_3c", "3x3", 1), two(x, "inception_3c", "5x5", 2), pool], 1)
    # 4a
    pool = zpad(conv_bn(l2pool(x), "inception_4a_pool_conv", "inception_4a_pool_bn"), 2, 2, 2, 2)
    one = conv_bn(x, "inception_4a_1x1_conv", "inception_4a_1x1_bn")
    x = torch.cat([two(x, "inception_4a", "3x3", 1), two(x, "inception_4a", "5x5", 2), pool, one], 1)
    # 4e
    pool = zpad(F.max_pool2d(x, 3, 2), 0, 1, 0, 1)
    x = torch.cat([two(x, "inception_4e", "3x3", 1), two(x, "inception_4e", "5x5", 2), pool], 1)
    # 5a
    pool = zpad(conv_bn(l2pool(x), "inception_5a_pool_conv", "inception_5a_pool_bn"), 1, 1, 1, 1)
    one = conv_bn(x, "inception_5a_1x1_conv", "inception_5a_1x1_bn")
    x = torch.cat([two(x, "inception_5a", "3x3", 1), pool, one], 1)
    # 5b
    pool = zpad(conv_bn(F.max_pool2d(x, 3, 2), "inception_5b_pool_conv", "inception_5b_pool_bn"), 1, 1, 1, 1)
    one = conv_bn(x, "inception_5b_1x1_conv", "inception_5b_1x1_bn")
    x = torch.cat([two(x, "inception_5b", "3x3", 1), pool, one], 1)
    x = torch.flatten(F.avg_pool2d(x, 3, 1), 1)
    y = F.linear(x, m.dense.weight, m.dense.bias)
    return y / torch.sqrt(torch.clamp((y * y).sum(1, keepdim=True), min=1e-12))


def test_forward_equals_a_literal_transcription_of_the_keras_graph(model):
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model(x), _keras_reference(model, x), atol=1e-5)
        # the reference is sensitive: dropping the LRN's alpha changes it
        assert not torch.allclose(model(x * 40), _keras_reference(model, x * 40, lrn_axis=1), atol=2e-5)


def test_openface_lrn_is_cross_channel():
    m = _randomised(lrn="openface")
    x = torch.rand(2, 3, 96, 96) * 40  # large inputs, so the LRN matters

    def cross_channel(x):  # Torch SpatialCrossMapLRN(5, 1e-4, 0.75, 1)
        sq, out = x * x, torch.empty_like(x)
        for c in range(x.shape[1]):
            window = sq[:, max(0, c - 2) : c + 3].sum(1)
            out[:, c] = x[:, c] / (1 + 1e-4 / 5 * window) ** 0.75
        return out

    h = torch.rand(2, 64, 24, 24) * 40
    assert torch.allclose(m._lrn(h), cross_channel(h), atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(m(x), _randomised()(x), atol=1e-4)


def test_split_run_and_folded_batch_norm_give_the_same_embeddings(model):
    x = torch.rand(4, 3, 96, 96)
    with torch.no_grad():
        full = model(x)
        split = model.run(model.run(x, stop="inception_3b"), start="inception_3c")
        folded = fold_batch_norm(model)(x)
    assert torch.equal(full, split)
    assert torch.allclose(full, folded, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold_batch_norm(model).modules())


def test_l2_pool_has_finite_gradients_on_all_zero_windows():
    torch.manual_seed(0)
    m = NN4Small2().train()
    loss = m(torch.zeros(2, 3, 96, 96)).sum() + m(torch.rand(2, 3, 96, 96)).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_to_input_follows_img_to_encoding():
    chips = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    x = to_input(list(chips))
    assert x.shape == (2, 3, 96, 96) and x.dtype == torch.float32
    # channels first, RGB kept in order, scaled by 1/255 (img[..., ::-1] of a BGR read is RGB)
    expected = np.around(np.transpose(chips[1], (2, 0, 1)) / 255.0, decimals=12)
    assert np.allclose(x[1].numpy(), expected, atol=1e-7)
    with pytest.raises(ValueError):
        to_input(np.zeros((2, 3, 96, 96), np.uint8))


@pytest.mark.data
def test_shared_weights_fit_the_architecture_up_to_the_missing_layers():
    """With the exercise's weights, the activations entering every batch norm of the
    complete part of the network (stem to 3c's 5x5 branch) on the exercise's faces have
    the statistics that batch norm learnt; after a missing layer they do not. A wrong
    padding, pooling, branch order or input scaling would break the first property."""
    from facegate.images import load_image
    from facegate.learn.nets.nn4small2_weights import load_csv

    folder = data_dir("happyhouse")
    m = NN4Small2()
    load_csv(m, folder / "weights", strict=False)
    m.eval()
    faces = [load_image(p) for p in sorted((folder / "images").glob("*.jpg"))]
    ratios: dict[str, tuple[float, float]] = {}

    def hook(name):
        def record(module, inputs, _output):
            z = inputs[0]
            sd = module.running_var.sqrt()
            shift = ((z.mean((0, 2, 3)) - module.running_mean) / sd).abs().median()
            ratios[name] = (float(shift), float((z.var((0, 2, 3)) / module.running_var).median()))

        return record

    for name, module in m.named_layers():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        m(to_input(faces))
    complete = [n for n in ratios if not n.startswith(("inception_3c_3x3_bn2", "inception_4", "inception_5"))]
    assert len(complete) == 18  # stem 3, 3a 6, 3b 6, 3c 3
    for name in complete:
        shift, var_ratio = ratios[name]
        assert shift < 0.5 and 0.5 < var_ratio < 2.5, (name, shift, var_ratio)
    assert ratios["inception_3c_3x3_bn2"][1] < 0.3  # its convolution is one of the missing files


def test_the_training_configs_stage_names_are_the_networks():
    """`facegate train faces --train-from` offers the stages the network has (its config needs no torch)."""
    from facegate.learn.nets.nn4small2 import STAGES
    from facegate.learn.training.config import NN4SMALL2_STAGES

    assert NN4SMALL2_STAGES == STAGES
