"""The PyTorch embedding models: ``openface-nn4small2`` and ``omniglot``.

Each module registers its model into :data:`facegate.models.MODELS` when imported (the
core registry names them and imports the module on first use); torch is imported only
when a model is built.
"""
