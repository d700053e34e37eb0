"""A trained Omniglot one-shot network as a facegate embedding model (``"omniglot"``).

Use it with ``detector_backend="skip"``: the whole image is the "face", so the chip is
the whole image in grey, resized to 105x105 (Omniglot's size); ``embed`` turns it into
ink (dark = ink), downsamples it as in training and runs the network. Then every
facegate API – verify, galleries, evaluation – works on handwritten characters::

    facegate.verify("a.png", "b.png", model_name="omniglot", detector_backend="skip",
                    threshold=...)

The checkpoint comes from ``weights=`` or ``$FACEGATE_OMNIGLOT_WEIGHTS`` (written by
``facegate train omniglot``). PyTorch is imported when the model is built, never at
import time, so the core install can list this model without torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facegate.detection.base import FacialArea
from facegate.errors import ModelUnavailableError
from facegate.models.base import EmbeddingModel
from facegate.models.registry import MODELS

WEIGHTS_ENV = "FACEGATE_OMNIGLOT_WEIGHTS"
CHIP_SIDE = 105


@MODELS.register("omniglot")
class OmniglotModel(EmbeddingModel):
    """Embeddings of handwritten characters from a network trained on Omniglot."""

    name = "omniglot"
    dim = 64  # replaced by the checkpoint's on construction
    default_metric = "euclidean"
    normalized = False

    def __init__(self, weights: str | os.PathLike[str] | None = None, batch_size: int = 256) -> None:
        path = weights or os.environ.get(WEIGHTS_ENV)
        if not path:
            raise ModelUnavailableError(
                f"the omniglot model needs a checkpoint: pass weights=PATH or set ${WEIGHTS_ENV} "
                "(train one with: facegate train omniglot --out DIR)"
            )
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"omniglot checkpoint not found: {path}")
        try:
            import torch

            from facegate.nets.omniglot import load_checkpoint
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the omniglot model needs PyTorch ({exc}); pip install 'facegate[train]'"
            ) from None
        try:
            loaded = load_checkpoint(path)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelUnavailableError(f"cannot load omniglot checkpoint {path}: {exc}") from None
        self._torch: Any = torch
        self._loaded = loaded
        self.weights = path
        self.batch_size = batch_size
        self.dim = int(loaded.net.dim)  # type: ignore[misc]
        self.normalized = bool(loaded.spec.normalize)  # type: ignore[misc]
        self.default_metric = "cosine" if loaded.spec.metric == "cosine" else "euclidean"  # type: ignore[misc]
        #: distance threshold at the validation EER, when training stored one
        self.threshold: float | None = loaded.metrics.get("val_eer_threshold")

    def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
        """The face box (the whole image under ``skip``) in grey, 105x105 uint8."""
        h, w = image.shape[:2]
        x0, y0 = max(face.x, 0), max(face.y, 0)
        x1, y1 = min(face.x + face.w, w), min(face.y + face.h, h)
        crop = image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image
        grey = Image.fromarray(np.ascontiguousarray(crop)).convert("L")
        if grey.size != (CHIP_SIDE, CHIP_SIDE):
            grey = grey.resize((CHIP_SIDE, CHIP_SIDE), Image.Resampling.BOX)
        return np.asarray(grey, dtype=np.uint8)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        from facegate.datasets.omniglot import prepare

        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        grey = np.stack([_grey(c) for c in chips])
        ink = 1.0 - grey / 255.0
        spec = self._loaded.spec
        x = prepare(ink, spec.input_size, spec.center)
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size]))[:, None]
                out.append(self._loaded.net(batch).float().numpy())
        return np.concatenate(out).astype(np.float32)


def _grey(chip: np.ndarray) -> np.ndarray:
    arr = np.asarray(chip)
    if arr.ndim == 3:
        arr = arr.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    arr = arr.astype(np.float32)
    if arr.shape != (CHIP_SIDE, CHIP_SIDE):
        arr = np.asarray(
            Image.fromarray(arr.clip(0, 255).astype(np.uint8)).resize((CHIP_SIDE, CHIP_SIDE), Image.Resampling.BOX),
            dtype=np.float32,
        )
    return arr
