"""Per-image camera pose refinement: a learned SE(3) correction of each train camera.

camera-to-world' = camera-to-world @ exp(delta), delta = (translation, axis-angle)
per image, zero at start; gradients reach it through the rasterizer's viewmat
gradient. A small L2 penalty keeps corrections small.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _so3_exp(w: Tensor) -> Tensor:
    """Axis-angle [B, 3] -> rotation [B, 3, 3] (Rodrigues, stable near 0)."""
    theta2 = (w * w).sum(-1, keepdim=True)[..., None]
    theta = torch.sqrt(theta2 + 1e-12)
    zero = torch.zeros_like(w[:, 0])
    K = torch.stack([zero, -w[:, 2], w[:, 1], w[:, 2], zero, -w[:, 0], -w[:, 1], w[:, 0], zero], -1).reshape(-1, 3, 3)
    a = torch.where(theta2 < 1e-8, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(theta2 < 1e-8, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-12))
    return torch.eye(3, device=w.device, dtype=w.dtype) + a * K + b * (K @ K)


class PoseRefinement(nn.Module):
    def __init__(self, num_images: int):
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(num_images, 6))

    def forward(self, viewmats: Tensor, image_ids: Tensor) -> Tensor:
        """Corrected world-to-camera matrices [B, 4, 4]."""
        d = self.delta[image_ids]
        T = torch.eye(4, device=viewmats.device, dtype=viewmats.dtype).repeat(len(d), 1, 1)
        T[:, :3, :3] = _so3_exp(d[:, 3:])
        T[:, :3, 3] = d[:, :3]
        c2w = torch.linalg.inv(viewmats) @ T
        return torch.linalg.inv(c2w)

    def regularizer(self) -> Tensor:
        return (self.delta**2).mean()
