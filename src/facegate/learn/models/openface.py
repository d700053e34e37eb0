"""``openface-nn4small2``: OpenFace's nn4.small2 FaceNet (the "Happy House" model).

Chips are 96x96 OpenFace alignments (outer eyes and nose on OpenFace's template,
:mod:`facegate.alignment_openface`); the network is :class:`facegate.learn.nets.nn4small2.NN4Small2`
and its embeddings are unit length.

facegate ships no weights for it. Give them as ``weights=`` or in the environment
variable ``FACEGATE_NN4SMALL2_WEIGHTS``: the exercise's folder of per-layer CSV files,
a Keras ``nn4.small2.v1.h5``, or a ``.pt``/CSV folder written by ``facegate train faces``.
This module imports torch only when the model is built, so the core install (without
the ``[train]`` extra) can import the registry.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from facegate.alignment_openface import openface_chip
from facegate.detection.base import FacialArea
from facegate.errors import ModelUnavailableError
from facegate.models.base import EmbeddingModel, as_chip
from facegate.models.registry import MODELS

if TYPE_CHECKING:  # pragma: no cover
    from facegate.learn.nets.nn4small2 import NN4Small2

#: environment variable naming the weights when ``weights=`` is not given
WEIGHTS_ENV = "FACEGATE_NN4SMALL2_WEIGHTS"

_WHERE = (
    "nn4.small2 needs weights and facegate ships none. Give weights=PATH (CLI: --weights) or "
    f"set {WEIGHTS_ENV}=PATH, where PATH is one of: the folder of per-layer CSV files of the "
    "Coursera 'Happy House' face-recognition exercise (conv1_w.csv, bn1_m.csv, ... dense_b.csv); "
    "a Keras HDF5 file such as nn4.small2.v1.h5 (converted from OpenFace's nn4.small2.v1.t7, "
    "https://cmusatyalab.github.io/openface/models-and-accuracies/); or the output of "
    "'facegate train faces'. To run with untrained random weights anyway (tests only), pass "
    "allow_random=True."
)


def as_bool(value: object) -> bool:
    """``True``/``False`` from a bool or a CLI string (1/0, true/false, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise ValueError(f"expected a boolean (true/false, 1/0), got {value!r}")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelUnavailableError(
            "openface-nn4small2 runs on PyTorch, which is not installed: pip install 'facegate[train]'"
        ) from exc
    return torch


@MODELS.register("openface-nn4small2")
class OpenFaceNN4Small2(EmbeddingModel):
    """OpenFace nn4.small2 (3.74 M parameters): 96x96 OpenFace chip to a 128-d unit vector.

    ``weights``: CSV folder, ``.h5`` or ``.pt`` (default: ``$FACEGATE_NN4SMALL2_WEIGHTS``).
    ``strict``: refuse incomplete weights (default); ``strict=False`` loads what is there
    and warns. ``allow_random``: run without weights (random, useless embeddings).
    ``threads``: PyTorch CPU threads while embedding (default: PyTorch's). All options
    also accept strings, as the CLI passes them.
    """

    name = "openface-nn4small2"
    dim = 128
    faces = True
    default_metric = "euclidean"
    chip_size = 96
    engine_name = "torch"

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        allow_random: bool | str = False,
        strict: bool | str = True,
        lrn: str = "exercise",
        batch_size: int | str = 64,
        threads: int | str | None = None,
    ) -> None:
        source = weights if weights not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
        if source is None and not as_bool(allow_random):
            raise ModelUnavailableError(_WHERE)
        torch = _torch()
        from facegate.learn.nets.nn4small2 import NN4Small2, fold_batch_norm
        from facegate.learn.nets.nn4small2_weights import load_weights

        net = NN4Small2(lrn=lrn)  # type: ignore[arg-type]
        self.weights: str | None = None
        if source is not None:
            report = load_weights(net, source, strict=as_bool(strict))
            if report.missing:
                warnings.warn(
                    f"nn4.small2 weights from {source} are incomplete; layers left random: "
                    + ", ".join(report.missing_layers()),
                    stacklevel=2,
                )
            self.weights = str(source)
        self.network: NN4Small2 = net.eval()
        self._inference = fold_batch_norm(net)
        self._torch = torch
        self.batch_size = max(1, int(batch_size))
        self.threads = int(threads) if threads not in (None, "") else None

    def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
        return openface_chip(image, face, size=self.chip_size)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        from facegate.learn.nets.nn4small2 import to_input

        torch = self._torch
        batch = [as_chip(c, self.chip_size) for c in chips]
        saved = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = [
                    self._inference(to_input(batch[s : s + self.batch_size])).numpy()
                    for s in range(0, len(batch), self.batch_size)
                ]
        finally:
            torch.set_num_threads(saved)
        return np.concatenate(out).astype(np.float32, copy=False)
