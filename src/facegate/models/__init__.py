"""Embedding models: a registry of named models that map aligned faces to vectors.

Importing this package registers the built-in models. The PyTorch models live in
:mod:`facegate.learn.models` (the ``[train]`` extra); they are named here and their
module is imported when one is first built, so the core never imports torch or
:mod:`facegate.learn`.
"""

from facegate.models import arcface as _arcface  # noqa: F401  (ArcFace-style ONNX files a user brings)
from facegate.models import builtin as _builtin  # noqa: F401  (registers the models)
from facegate.models.base import EmbeddingModel
from facegate.models.registry import MODELS, get_model

MODELS.register_lazy("openface-nn4small2", "facegate.learn.models.openface")
MODELS.register_lazy("omniglot", "facegate.learn.models.omniglot")

__all__ = ["MODELS", "EmbeddingModel", "get_model"]
