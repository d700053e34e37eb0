"""The interface every embedding model implements.

A model owns two steps: ``chip`` turns an image and one detected face into the aligned
crop the network expects (each model aligns its own way), and ``embed`` maps a batch
of chips to embeddings. Callers (the pipeline, the gallery, evaluation) only see this
interface, so new models (PyTorch ones included) plug in through the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from facegate.detection.base import FacialArea


class EmbeddingModel(ABC):
    #: registry name, stored in galleries and results
    name: ClassVar[str]
    #: embedding length
    dim: ClassVar[int]
    #: metric used when the caller names none
    default_metric: ClassVar[str] = "euclidean"
    #: whether ``embed`` returns unit-length vectors
    normalized: ClassVar[bool] = True
    #: whether inputs are faces, so the probe quality gate (size, pose, sharpness) applies
    faces: ClassVar[bool] = False
    #: what runs the network (recorded in results and galleries)
    engine_name: str = "numpy"

    @abstractmethod
    def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
        """Aligned crop of ``face`` from an RGB uint8 image, as this model's input."""

    @abstractmethod
    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """Embeddings of a batch of chips, float32 array of shape (len(chips), dim)."""

    def embed_one(self, chip: np.ndarray) -> np.ndarray:
        return self.embed([chip])[0]

    def embed_tta(self, chips: list[np.ndarray]) -> np.ndarray:
        """Test-time augmentation: each chip's embedding averaged with its mirror image's.

        Faces are nearly symmetric, so a mirrored face is the same person; a model whose
        input changes meaning when mirrored (handwriting) overrides this.
        """
        if not chips:
            return self.embed(chips)
        both = self.embed(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips])
        mean = both[: len(chips)] + both[len(chips) :]
        if self.normalized:
            return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return (mean / 2).astype(np.float32)

    def weights_id(self) -> str | None:
        """A short fingerprint of the weights (None: the model has fixed weights, or no file).

        Galleries record it and refuse templates made with other weights under the same name.
        """
        return None

    def own_threshold(self, metric: str) -> float | None:
        """A decision threshold that came with the weights (None: use the threshold table)."""
        return None


def as_chip(chip: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 ``(size, size, 3)`` chip (grey is repeated, other sizes are resized)."""
    array = np.asarray(chip)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"a chip must be (H, W, 3) RGB, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.shape[:2] != (size, size):
        import cv2

        array = cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA)
    return array
