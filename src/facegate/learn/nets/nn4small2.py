"""OpenFace's nn4.small2 FaceNet network, as the "Happy House" exercise builds it in Keras.

Input: RGB faces aligned by OpenFace's outer-eyes-and-nose template
(:mod:`facegate.alignment_openface`), channels first, ``(m, 3, 96, 96)``, values in
``[0, 1]`` (the exercise's ``img_to_encoding``: BGR→RGB, ``/ 255``, transpose to CHW;
see :func:`to_input`). Output: ``(m, 128)`` L2-normalised embeddings.

Layer names are the exercise's (and the per-layer CSV files'): ``conv1``, ``bn1``, ...,
``inception_3a_3x3_conv1``, ``inception_3a_3x3_bn1``, ..., ``dense``. Every one is a
direct attribute of :class:`NN4Small2`, so ``model.get_submodule("inception_5b_1x1_conv")``
works and :func:`facegate.learn.nets.nn4small2_weights` can load files by name.

Conventions kept from the Keras model, so its weights behave the same here:

* every convolution has a bias and is followed by batch norm with ``epsilon = 1e-5``
  and a ReLU; every padding is an explicit *zero* padding (``ZeroPadding2D``) and every
  pooling is ``valid`` (so a max pool may see padded zeros, as in Keras);
* "L2 pooling" (blocks 3b, 4a, 5a) is ``sqrt(9 * avg_pool_3x3_stride3(x²))``;
* LRN is ``tf.nn.lrn(x, depth_radius=5, bias=1, alpha=1e-4, beta=0.75)``. The exercise
  applies it to a channels-first tensor, and ``tf.nn.lrn`` always normalises over the
  *last* axis, so there it runs across the image width; ``lrn="exercise"`` (default)
  reproduces that, ``lrn="openface"`` is the original Torch model's cross-channel
  ``SpatialCrossMapLRN(5, 1e-4, 0.75)``. With ``alpha = 1e-4`` the two differ by well
  under 1% of an activation.

Keras counts 3,743,280 parameters, 9,312 of them non-trainable (batch-norm moving mean
and variance); :func:`keras_param_counts` counts the same way (PyTorch keeps those
statistics as buffers).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "BN_EPSILON",
    "INPUT_SIZE",
    "KERAS_NON_TRAINABLE",
    "KERAS_TOTAL_PARAMS",
    "STAGES",
    "NN4Small2",
    "fold_batch_norm",
    "keras_param_counts",
    "to_input",
]

INPUT_SIZE = 96
EMBEDDING_DIM = 128
BN_EPSILON = 1e-5
KERAS_TOTAL_PARAMS = 3_743_280
KERAS_NON_TRAINABLE = 9_312

LrnMode = Literal["exercise", "openface"]

# An inception block: (name, input channels, branches). Branches, in concatenation order:
#   ("3x3" | "5x5", reduce_channels, out_channels, stride)   1x1 conv -> pad -> kxk conv
#   ("pool", "max" | "l2", stride, conv_channels | None, (left, right, top, bottom) pad)
#   ("1x1", out_channels)
_Branch = tuple
_4A = (("3x3", 96, 192, 1), ("5x5", 32, 64, 1), ("pool", "l2", 3, 128, (2, 2, 2, 2)), ("1x1", 256))
_BLOCKS: tuple[tuple[str, int, tuple[_Branch, ...]], ...] = (
    ("inception_3a", 192, (("3x3", 96, 128, 1), ("5x5", 16, 32, 1), ("pool", "max", 2, 32, (3, 4, 3, 4)), ("1x1", 64))),
    ("inception_3b", 256, (("3x3", 96, 128, 1), ("5x5", 32, 64, 1), ("pool", "l2", 3, 64, (4, 4, 4, 4)), ("1x1", 64))),
    ("inception_3c", 320, (("3x3", 128, 256, 2), ("5x5", 32, 64, 2), ("pool", "max", 2, None, (0, 1, 0, 1)))),
    ("inception_4a", 640, _4A),
    ("inception_4e", 640, (("3x3", 160, 256, 2), ("5x5", 64, 128, 2), ("pool", "max", 2, None, (0, 1, 0, 1)))),
    ("inception_5a", 1024, (("3x3", 96, 384, 1), ("pool", "l2", 3, 96, (1, 1, 1, 1)), ("1x1", 256))),
    ("inception_5b", 736, (("3x3", 96, 384, 1), ("pool", "max", 2, 96, (1, 1, 1, 1)), ("1x1", 256))),
)  # fmt: skip
_FINAL_CHANNELS = 736
_BRANCHES = {name: branches for name, _, branches in _BLOCKS}
#: the network's stages, in order: the stem, the seven inception blocks, the head
STAGES: tuple[str, ...] = ("stem", *(name for name, _, _ in _BLOCKS), "head")


class NN4Small2(nn.Module):
    """nn4.small2 (OpenFace / FaceNet "NN4 small 2"): ``(m, 3, 96, 96)`` -> ``(m, 128)``.

    Weights start as PyTorch's defaults (random); load real ones with
    :func:`facegate.learn.nets.nn4small2_weights.load_weights`.
    """

    def __init__(self, lrn: LrnMode = "exercise", bn_momentum: float = 0.1) -> None:
        super().__init__()
        if lrn not in ("exercise", "openface"):
            raise ValueError(f"lrn must be 'exercise' or 'openface', not {lrn!r}")
        self.lrn: LrnMode = lrn
        self._bn_momentum = bn_momentum
        #: (conv name, batch-norm name) of every convolution, in order
        self.conv_bn_pairs: list[tuple[str, str]] = []
        self._conv_bn("conv1", "bn1", 3, 64, 7, stride=2, pad=3)
        self._conv_bn("conv2", "bn2", 64, 64, 1)
        self._conv_bn("conv3", "bn3", 64, 192, 3, pad=1)
        for name, _cin, branches in _BLOCKS:
            cin = _cin
            for branch in branches:
                kind = branch[0]
                if kind in ("3x3", "5x5"):
                    _, reduce, out, stride = branch
                    k = int(kind[0])
                    self._conv_bn(f"{name}_{kind}_conv1", f"{name}_{kind}_bn1", cin, reduce, 1)
                    self._conv_bn(f"{name}_{kind}_conv2", f"{name}_{kind}_bn2", reduce, out, k, stride, k // 2)
                elif kind == "pool" and branch[3] is not None:
                    self._conv_bn(f"{name}_pool_conv", f"{name}_pool_bn", cin, branch[3], 1)
                elif kind == "1x1":
                    self._conv_bn(f"{name}_1x1_conv", f"{name}_1x1_bn", cin, branch[1], 1)
        self.dense = nn.Linear(_FINAL_CHANNELS, EMBEDDING_DIM)

    def _conv_bn(self, conv: str, bn: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> None:
        # Keras' ZeroPadding2D + 'valid' convolution is a zero-padded convolution
        self.add_module(conv, nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
        self.add_module(bn, nn.BatchNorm2d(cout, eps=BN_EPSILON, momentum=self._bn_momentum))
        self.conv_bn_pairs.append((conv, bn))

    def _cbr(self, x: Tensor, conv: str, bn: str) -> Tensor:
        return F.relu(self.get_submodule(bn)(self.get_submodule(conv)(x)), inplace=True)

    def _lrn(self, x: Tensor) -> Tensor:
        """``x / (1 + alpha * window_sum(x²)) ** 0.75`` (window over width or channels)."""
        sq = x * x
        if self.lrn == "openface":  # Torch SpatialCrossMapLRN(5, 1e-4, 0.75, 1): alpha / size
            n, c, h, w = x.shape
            mean = F.avg_pool2d(sq.reshape(n, 1, c, h * w), (5, 1), 1, (2, 0)).reshape(n, c, h, w)
            return x * (1.0 + 1e-4 * mean).pow(-0.75)
        # tf.nn.lrn(depth_radius=5, bias=1, alpha=1e-4, beta=0.75): a plain sum of 11
        total = 11.0 * F.avg_pool2d(sq, (1, 11), 1, (0, 5), count_include_pad=True)
        return x * (1.0 + 1e-4 * total).pow(-0.75)

    def features(self, x: Tensor) -> Tensor:
        """The 736 pooled features the dense layer maps to the embedding, ``(m, 736)``."""
        return torch.flatten(F.avg_pool2d(self.run(x, stop="inception_5b"), 3, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        """Unit-length embeddings ``(m, 128)`` of a ``(m, 3, 96, 96)`` batch."""
        return self.run(x)

    def run(self, x: Tensor, start: str = "stem", stop: str = "head") -> Tensor:
        """Run stages ``start`` to ``stop`` (inclusive) of :data:`STAGES` on ``x``.

        ``run(run(x, stop="inception_3b"), start="inception_3c")`` equals ``forward(x)``;
        training uses it to run a frozen trunk once, without gradients.
        """
        first, last = STAGES.index(start), STAGES.index(stop)
        for stage in STAGES[first : last + 1]:
            x = self._stage(stage, x)
        return x

    def _stage(self, stage: str, x: Tensor) -> Tensor:
        if stage == "stem":
            _check_input(x)
            # x >= 0 after ReLU, so max-pooling with padding equals Keras' zero pad + max pool
            x = F.max_pool2d(self._cbr(x, "conv1", "bn1"), 3, 2, padding=1)
            x = self._cbr(self._lrn(x), "conv2", "bn2")
            x = self._lrn(self._cbr(x, "conv3", "bn3"))
            return F.max_pool2d(x, 3, 2, padding=1)
        if stage == "head":
            pooled = torch.flatten(F.avg_pool2d(x, 3, 1), 1)
            return F.normalize(self.dense(pooled), p=2.0, dim=1, eps=1e-12)
        return torch.cat([self._branch(x, stage, b) for b in _BRANCHES[stage]], dim=1)

    def _branch(self, x: Tensor, name: str, branch: _Branch) -> Tensor:
        kind = branch[0]
        if kind in ("3x3", "5x5"):
            y = self._cbr(x, f"{name}_{kind}_conv1", f"{name}_{kind}_bn1")
            return self._cbr(y, f"{name}_{kind}_conv2", f"{name}_{kind}_bn2")
        if kind == "1x1":
            return self._cbr(x, f"{name}_1x1_conv", f"{name}_1x1_bn")
        _, pool, stride, conv_out, padding = branch
        y = F.max_pool2d(x, 3, stride) if pool == "max" else _l2_pool(x)
        if conv_out is not None:
            y = self._cbr(y, f"{name}_pool_conv", f"{name}_pool_bn")
        return F.pad(y, padding)

    def stage_layers(self, stage: str) -> list[str]:
        """Names of the weighted layers of one of :data:`STAGES`."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        names = [name for name, _ in self.named_layers()]
        if stage == "stem":
            return [n for n in names if not n.startswith("inception_") and n != "dense"]
        if stage == "head":
            return ["dense"]
        return [n for n in names if n.startswith(stage + "_")]

    def named_layers(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, module)`` of every weighted layer: conv, batch norm, dense."""
        for name, module in self.named_children():
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
                yield name, module


@torch.no_grad()
def fold_batch_norm(model: NN4Small2) -> NN4Small2:
    """An inference-only copy with every batch norm folded into its convolution.

    ``W' = W * gamma / sqrt(var + eps)`` and ``b' = (b - mean) * gamma / sqrt(var + eps) +
    beta``; the batch norms become identities. Same outputs (to float rounding) in eval
    mode, about a quarter faster on a CPU. Do not train the copy.
    """
    folded = copy.deepcopy(model).eval()
    for conv_name, bn_name in folded.conv_bn_pairs:
        conv = folded.get_submodule(conv_name)
        bn = folded.get_submodule(bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and conv.bias is not None
        assert bn.running_mean is not None and bn.running_var is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale[:, None, None, None])
        conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        setattr(folded, bn_name, nn.Identity())
    return folded


def _l2_pool(x: Tensor) -> Tensor:
    """``sqrt(9 * mean_3x3_stride3(x²))``, with a zero (not infinite) gradient at 0."""
    s = 9.0 * F.avg_pool2d(x * x, 3, 3)
    positive = s > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, s, torch.ones_like(s))), torch.zeros_like(s))


def _check_input(x: Tensor) -> None:
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
        hint = ""
        if len(shape) == 4 and shape[1:] == (INPUT_SIZE, INPUT_SIZE, 3):
            hint = " (that is channels-last; nn4.small2 takes channels first: x.permute(0, 3, 1, 2))"
        raise ValueError(f"nn4.small2 expects input of shape (m, 3, 96, 96), got {shape}{hint}")


def keras_param_counts(model: nn.Module) -> tuple[int, int]:
    """``(total, non_trainable)`` as Keras counts them: parameters plus BN mean/variance."""
    stats = sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None
    )
    params = sum(p.numel() for p in model.parameters())
    return params + stats, stats


def to_input(chips: Sequence[np.ndarray] | np.ndarray) -> Tensor:
    """A batch of RGB uint8 ``(96, 96, 3)`` chips as the network's float ``(m, 3, 96, 96)``.

    This is the exercise's ``img_to_encoding`` convention (it reads BGR with OpenCV and
    reverses the channels, so the network sees RGB), scaled to ``[0, 1]``; its rounding
    to 12 decimals changes nothing in float32.
    """
    batch = np.stack([np.asarray(c) for c in chips]) if not isinstance(chips, np.ndarray) else chips
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected RGB chips of shape (m, H, W, 3), got {batch.shape}")
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0)
