"""Data augmentation for character images (PyTorch).

* :func:`rotate_classes` – Omniglot's standard trick (Santoro et al., Vinyals et al.):
  each character rotated by 90, 180 and 270 degrees is a new class, 4x the classes.
* :func:`random_affine` – small random affine distortions of a batch (Koch et al.):
  rotation, shear, scale and translation, resampled bilinearly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["random_affine", "rotate_classes"]


def rotate_classes(images: Tensor, group_ids: np.ndarray | None = None) -> tuple[Tensor, np.ndarray | None]:
    """``(C, D, H, W)`` → ``(4C, D, H, W)``: the originals, then 90°, 180°, 270° rotations.

    Group (alphabet) ids are offset per rotation, so a rotated alphabet is a new one.
    """
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    if group_ids is None:
        return rotated, None
    groups = np.asarray(group_ids)
    span = int(groups.max()) + 1 if groups.size else 0
    return rotated, np.concatenate([groups + k * span for k in range(4)])


def random_affine(
    x: Tensor,
    generator: torch.Generator,
    rotation_deg: float = 10.0,
    shear: float = 0.2,
    scale: tuple[float, float] = (0.85, 1.15),
    translate: float = 0.03,
) -> Tensor:
    """Apply an independent random affine map to each image of an ``(n, c, h, w)`` batch.

    ``translate`` is a fraction of the image side (Koch et al.: about 2-3 pixels of 105);
    zero padding (no ink) fills in.
    """
    n = x.shape[0]
    u = torch.rand(n, 5, generator=generator, dtype=x.dtype, device=x.device) * 2 - 1
    theta = u[:, 0] * math.radians(rotation_deg)
    sh = u[:, 1] * shear
    s = scale[0] + (u[:, 2] + 1) / 2 * (scale[1] - scale[0])
    tx, ty = u[:, 3] * translate * 2, u[:, 4] * translate * 2  # grid spans [-1, 1]
    cos, sin = torch.cos(theta), torch.sin(theta)
    # inverse map (output grid → input), rotation then shear, divided by scale
    a = torch.stack(
        [
            torch.stack([cos, -sin + sh * cos, tx], dim=1),
            torch.stack([sin, cos + sh * sin, ty], dim=1),
        ],
        dim=1,
    )
    a[:, :, :2] /= s[:, None, None]
    grid = F.affine_grid(a, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
