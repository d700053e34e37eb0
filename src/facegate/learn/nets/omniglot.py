"""Networks for Omniglot one-shot learning, and their checkpoints.

* :class:`KochEmbedding` / :class:`KochSiamese` – the Siamese CNN of Koch, Zemel &
  Salakhutdinov (2015) on 105x105 input: conv 64@10x10, 128@7x7, 128@4x4, 256@4x4 with
  max-pooling, then a sigmoid dense layer (4096 wide in the paper, configurable); the
  Siamese head weighs the L1 distance of the twin vectors. The original configuration
  has 38,951,745 parameters – too slow to train on a CPU, kept as the reference.
* :class:`ConvEmbedding` – the compact CNN used for CPU training: blocks of
  conv3x3-BN-ReLU-maxpool2 (Vinyals et al. / Snell et al. "Conv-4") on a downsampled
  28x28 input, widths configurable, optional linear projection; run channels-last,
  which is 2-3x faster on a CPU. 0.1–0.4M parameters, ~10–15M multiply-adds per image.

* :class:`SiameseHead` – Koch et al.'s head: weighted L1 distance of twin embeddings to a
  logit; :meth:`SiameseHead.as_metric` is the same head as a :mod:`facegate.distances`
  metric (a similarity: higher is closer).
* :class:`Embedder` – a network as a function from ink images to embeddings, with the
  one-pixel-shift test-time augmentation; the one-shot evaluation and the ``omniglot``
  embedding model both embed through it.

A checkpoint is one ``torch.save`` dict holding the network's :class:`NetSpec`, its
weights, the Siamese head (if any), and the full training state for resuming.
"""

from __future__ import annotations

import itertools
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from facegate.distances import Metric
from facegate.learn.omniglot_data import prepare

__all__ = [
    "CHECKPOINT_FORMAT",
    "TTA_SHIFTS",
    "ConvEmbedding",
    "Embedder",
    "KochEmbedding",
    "KochSiamese",
    "LoadedNet",
    "NetSpec",
    "SiameseHead",
    "build_embedding",
    "count_parameters",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "facegate-omniglot/1"


@dataclass
class NetSpec:
    """Everything needed to rebuild a network and feed it."""

    #: "conv" (compact) or "koch"
    arch: str = "conv"
    #: side of the square input the 105x105 images are box-downsampled to
    input_size: int = 28
    #: whether the ink is centred before downsampling
    center: bool = False
    #: scale the ink's bounding box to this fraction of the side (and centre it)
    fit: float | None = None
    #: conv widths, one per block (conv arch)
    channels: tuple[int, ...] = (64, 64, 64, 64)
    #: output dimension: a final linear layer when set (conv), the dense width (koch)
    dim: int | None = None
    #: L2-normalise the embeddings
    normalize: bool = False
    #: how two embeddings are compared: a :data:`facegate.distances.METRICS` name
    #: ("euclidean", "cosine") or "siamese-head" (the trained head, a similarity)
    metric: str = "euclidean"
    #: Siamese head on top (siamese-bce)
    head: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "channels" in known:
            known["channels"] = tuple(known["channels"])
        if known.get("metric") == "sqeuclidean":  # checkpoints before the one vocabulary: the same order
            known["metric"] = "euclidean"
        return cls(**known)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvEmbedding(nn.Module):
    """Conv-k embedding: k blocks of conv3x3-BN-ReLU-maxpool2, flattened (+ linear)."""

    def __init__(
        self,
        input_size: int = 28,
        channels: tuple[int, ...] = (64, 64, 64, 64),
        dim: int | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        widths = (1, *channels)
        self.features = nn.Sequential(*(_block(a, b) for a, b in itertools.pairwise(widths)))
        side = input_size
        for _ in channels:
            side //= 2
        if side < 1:
            raise ValueError(f"{len(channels)} pooling blocks are too many for a {input_size}px input")
        flat = channels[-1] * side * side
        self.project = nn.Linear(flat, dim) if dim else None
        self.dim = dim or flat
        self.normalize = normalize
        # channels-last runs 2-3x faster on CPUs (oneDNN convolutions, pooling, BN)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        z = self.features(x.contiguous(memory_format=torch.channels_last)).flatten(1)
        if self.project is not None:
            z = self.project(z)
        return F.normalize(z, dim=1) if self.normalize else z


class KochEmbedding(nn.Module):
    """The twin network of Koch et al. (2015): 105x105 → ``dense``-d sigmoid features."""

    def __init__(self, dense: int = 4096, input_size: int = 105) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, 10),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 7),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 4),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 4),
            nn.ReLU(inplace=True),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 1, input_size, input_size)).numel()
        self.dense = nn.Linear(flat, dense)
        self.dim = dense
        self.normalize = False

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.dense(self.features(x).flatten(1)))


class SiameseHead(nn.Module):
    """Koch et al. head: component-wise L1 distance of twin embeddings → dense → logit.

    Returns logits (apply ``torch.sigmoid`` for the probability of "same").
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 1)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.fc((x1 - x2).abs()).squeeze(-1)

    def as_metric(self) -> HeadMetric:
        """The trained head as a numpy :class:`~facegate.distances.Metric` (probability of "same")."""
        weight = self.fc.weight.detach().cpu().numpy().ravel().astype(np.float32)
        return HeadMetric(weight, float(self.fc.bias.detach().cpu().item()))


class HeadMetric(Metric):
    """``σ(w·|a − b| + b)``, the probability that two embeddings show the same class: a
    similarity, so :attr:`higher_is_closer`."""

    name = "siamese-head"
    higher_is_closer = True

    def __init__(self, weight: np.ndarray, bias: float) -> None:
        self.weight, self.bias = np.asarray(weight, dtype=np.float32), float(bias)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.abs(np.asarray(a) - np.asarray(b)) @ self.weight + self.bias)))

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``(..., n, d)`` against ``(..., m, d)`` → ``(..., n, m)``."""
        return self(np.asarray(a)[..., :, None, :], np.asarray(b)[..., None, :, :])


class KochSiamese(nn.Module):
    """Twin :class:`KochEmbedding` + L1 Siamese head; ``forward(x1, x2)`` gives logits."""

    def __init__(self, dense: int = 4096, input_size: int = 105) -> None:
        super().__init__()
        self.embedding = KochEmbedding(dense, input_size)
        self.head = SiameseHead(dense)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.head(self.embedding(x1), self.embedding(x2))


#: one-pixel shifts (at the network's input size) averaged by test-time augmentation
TTA_SHIFTS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))


class Embedder:
    """A trained embedding network as a function of ink images (numpy in, numpy out).

    With ``tta`` each embedding is the mean over the image shifted by one pixel in each
    direction and unshifted (:data:`TTA_SHIFTS`); never mirrored (a mirrored letter is
    another letter).
    """

    def __init__(self, net: nn.Module, spec: NetSpec, batch_size: int = 512, tta: bool = False) -> None:
        self.net, self.spec, self.batch_size, self.tta = net, spec, batch_size, tta

    def __call__(self, ink: np.ndarray) -> np.ndarray:
        """``(n, H, W)`` ink images (1 = ink) → ``(n, d)`` float32 embeddings."""
        return self.embed_prepared(prepare(ink, self.spec.input_size, self.spec.center, self.spec.fit))

    def embed_prepared(self, x: np.ndarray) -> np.ndarray:
        """Embeddings of already-prepared ``(n, S, S)`` float inputs."""
        if not self.tta:
            return self._forward(x)
        total = sum(self._forward(np.roll(x, shift, axis=(1, 2))) for shift in TTA_SHIFTS)
        return (total / len(TTA_SHIFTS)).astype(np.float32)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        was_training = self.net.training
        self.net.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size], dtype=np.float32))
                out.append(self.net(batch[:, None]).float().numpy())
        self.net.train(was_training)
        if not out:
            return np.zeros((0, int(self.net.dim)), dtype=np.float32)
        return np.concatenate(out)


def build_embedding(spec: NetSpec) -> nn.Module:
    """The embedding network a :class:`NetSpec` describes (``.dim`` is its output size)."""
    if spec.arch == "conv":
        return ConvEmbedding(spec.input_size, tuple(spec.channels), spec.dim, spec.normalize)
    if spec.arch == "koch":
        return KochEmbedding(spec.dim or 4096, spec.input_size)
    raise ValueError(f"unknown architecture {spec.arch!r}; expected 'conv' or 'koch'")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class LoadedNet:
    """A network restored from a checkpoint, in eval mode."""

    spec: NetSpec
    net: nn.Module
    head: SiameseHead | None
    config: dict[str, Any]
    metrics: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike[str],
    spec: NetSpec,
    net: nn.Module,
    head: nn.Module | None = None,
    config: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": spec.to_dict(),
        "net": net.state_dict(),
        "head": head.state_dict() if head is not None else None,
        "config": config or {},
        "state": state or {},
        "metrics": metrics or {},
    }
    tmp = target.with_name(target.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict (weights on the CPU)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # torch's words for "not a torch file"
        raise ValueError(f"{path} is not a facegate Omniglot checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a facegate Omniglot checkpoint ({CHECKPOINT_FORMAT})")
    return payload


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedNet:
    """Rebuild the network (and Siamese head) stored in a checkpoint, in eval mode."""
    payload = read_checkpoint(path)
    spec = NetSpec.from_dict(payload["spec"])
    net = build_embedding(spec)
    net.load_state_dict(payload["net"])
    net.eval()
    head = None
    if payload.get("head") is not None:
        head = SiameseHead(net.dim)
        head.load_state_dict(payload["head"])
        head.eval()
    return LoadedNet(spec, net, head, payload.get("config", {}), payload.get("metrics", {}))
