"""The embedding-model registry and the shared instances callers use."""

from __future__ import annotations

from facegate.models.base import EmbeddingModel
from facegate.registry import Registry

MODELS: Registry[EmbeddingModel] = Registry("model")


def get_model(model: str | EmbeddingModel, **options: object) -> EmbeddingModel:
    """Model ``model``: the shared instance of a registry name (one per set of options), or the instance given.

    An instance lets code pass what the environment variables would otherwise say, e.g.
    ``verify(a, b, model_name=MODELS.create("openface-nn4small2", weights=PATH))``.
    """
    if isinstance(model, EmbeddingModel):
        return model
    return MODELS.shared(model, **options)
