"""Neural networks (PyTorch; the ``[train]`` extra)."""
