"""The embedding-model registry and the shared instances callers use."""

from __future__ import annotations

from functools import cache

from facegate.models.base import EmbeddingModel
from facegate.registry import Registry

MODELS: Registry[EmbeddingModel] = Registry("model")


def get_model(name: str, **options: str) -> EmbeddingModel:
    """The shared instance of model ``name`` (built once per set of options)."""
    return _instance(name, tuple(sorted(options.items())))


@cache
def _instance(name: str, options: tuple[tuple[str, str], ...]) -> EmbeddingModel:
    return MODELS.create(name, **dict(options))
