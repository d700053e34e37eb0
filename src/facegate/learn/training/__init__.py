"""Training (PyTorch; the ``[train]`` extra): samplers, loops and checkpoints."""
