"""A trained Omniglot one-shot network as a facegate embedding model (``"omniglot"``).

Use it with ``detector_backend="skip"``: the whole image is the "face", so the chip is
the whole image in grey, resized to 105x105 (Omniglot's size); ``embed`` turns it into
ink (dark = ink), downsamples it as in training and runs the network. Then every
facegate API – verify, galleries, evaluation – works on handwritten characters::

    facegate.verify("a.png", "b.png", model_name="omniglot", detector_backend="skip")

Test-time augmentation never mirrors a character (a mirrored letter is another letter):
it averages one-pixel shifts, as ``facegate evaluate oneshot --tta`` does. The default
threshold is the one training measured at the equal error rate on its held-out
alphabets (with the same augmentation), unless the threshold table has one.

The checkpoint comes from ``weights=`` or ``$FACEGATE_OMNIGLOT_WEIGHTS`` (written by
``facegate train omniglot``). PyTorch is imported when the model is built, never at
import time, so the core install can list this model without torch.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    engine_name = "torch"

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
            from facegate.learn.nets.omniglot import Embedder, load_checkpoint
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the omniglot model needs PyTorch ({exc}); pip install 'facegate[train]'"
            ) from None
        try:
            loaded = load_checkpoint(path)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelUnavailableError(f"cannot load omniglot checkpoint {path}: {exc}") from None
        self._loaded = loaded
        self._plain = Embedder(loaded.net, loaded.spec, batch_size, tta=False)
        self._shifted = Embedder(loaded.net, loaded.spec, batch_size, tta=True)
        self.weights = path
        self.dim = int(loaded.net.dim)  # type: ignore[misc]
        self.normalized = bool(loaded.spec.normalize)  # type: ignore[misc]
        # a Siamese head's checkpoint is compared here by the Euclidean distance of its embeddings
        self.default_metric = "cosine" if loaded.spec.metric == "cosine" else "euclidean"  # type: ignore[misc]
        #: distance thresholds at the validation EER, plain and with shift TTA, when training stored them
        self.threshold: float | None = loaded.metrics.get("val_eer_threshold")
        self.threshold_tta: float | None = loaded.metrics.get("val_eer_threshold_tta", self.threshold)

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
        return self._plain.embed_prepared(self._prepare(chips))

    def embed_tta(self, chips: list[np.ndarray]) -> np.ndarray:
        """The mean embedding over one-pixel shifts (never a mirror image)."""
        return self._shifted.embed_prepared(self._prepare(chips))

    def own_threshold(self, metric: str) -> float | None:
        """The validation-EER threshold stored by training, for the model's own metric.

        It was measured with shift TTA (facegate's default); without TTA distances
        spread a little more, see ``threshold`` for the plain one.
        """
        return self.threshold_tta if metric == self.default_metric else None

    def _prepare(self, chips: list[np.ndarray]) -> np.ndarray:
        from facegate.learn.omniglot_data import prepare  # numpy only: no torch until a model is built

        spec = self._loaded.spec
        if not chips:
            return np.zeros((0, spec.input_size, spec.input_size), dtype=np.float32)
        ink = 1.0 - np.stack([_grey(c) for c in chips]) / 255.0
        return prepare(ink, spec.input_size, spec.center, spec.fit)


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
