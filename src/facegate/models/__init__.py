"""Embedding models: a registry of named models that map aligned faces to vectors.

Importing this package registers the built-in models. Optional models (PyTorch ones,
in the ``[train]`` extra) register factories that import their dependencies only when
built, so the core install never imports torch.
"""

from facegate.models import arcface as _arcface  # noqa: F401  (ArcFace-style ONNX files a user brings)
from facegate.models import builtin as _builtin  # noqa: F401  (registers the models)
from facegate.models import omniglot as _omniglot  # noqa: F401  (torch imported only when built)
from facegate.models import openface as _openface  # noqa: F401  (torch imported only when built)
from facegate.models.base import EmbeddingModel
from facegate.models.registry import MODELS, get_model

__all__ = ["MODELS", "EmbeddingModel", "get_model"]
