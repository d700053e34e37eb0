"""The built-in embedding models: dlib's ResNet and the raw-pixel baseline."""

from __future__ import annotations

import numpy as np

from facegate.alignment import dlib_chip
from facegate.detection.base import FacialArea
from facegate.models.base import EmbeddingModel
from facegate.models.engines import get_engine
from facegate.models.registry import MODELS


@MODELS.register("dlib-resnet")
class DlibResNet(EmbeddingModel):
    """dlib's ResNet-34-style face model: 150x150 5-point-aligned chip to 128-d.

    dlib trained it with a pairwise hinge loss at a Euclidean margin of 0.6 and
    reports 99.38% on LFW; its vectors are close to, but not exactly, unit length, so
    facegate L2-normalises them.
    """

    name = "dlib-resnet"
    dim = 128
    faces = True
    default_metric = "euclidean"
    chip_size = 150

    def __init__(self, engine: str | None = None) -> None:
        #: what runs the network: ONNX Runtime by default, or dlib (``$FACEGATE_ENGINE``)
        self.engine = get_engine(engine)

    @property
    def engine_name(self) -> str:  # type: ignore[override]
        return self.engine.name

    def weights_id(self) -> str:
        return self.engine.weights_id()

    def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
        return dlib_chip(image, face, size=self.chip_size, padding=0.25)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.engine.descriptors(chips)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@MODELS.register("pixels")
class Pixels(EmbeddingModel):
    """The naive baseline: the aligned grey face's pixels, standardised, as the vector.

    It is kept so evaluations can show what a learned embedding buys.
    """

    name = "pixels"
    faces = True
    side = 32
    dim = side * side
    default_metric = "euclidean_l2"

    def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
        return dlib_chip(image, face, size=self.side, padding=0.0)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        grey = np.stack([np.asarray(c, dtype=np.float32) @ [0.299, 0.587, 0.114] for c in chips])
        flat = grey.reshape(len(chips), -1)
        flat -= flat.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        return (flat / np.maximum(norms, 1e-6)).astype(np.float32)
