"""Per-image appearance: a learned color correction applied to training renders.

`exposure`: a per-image, per-channel log gain and bias (c' = c * exp(g) + b).
`affine`: a per-image 3x3 color matrix and bias (identity at start).
Test renders use no correction (the scene's own colors).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AppearanceModel(nn.Module):
    def __init__(self, num_images: int, mode: str = "exposure"):
        super().__init__()
        if mode not in ("exposure", "affine"):
            raise ValueError(f"appearance must be 'none', 'exposure' or 'affine', got {mode!r}")
        self.mode = mode
        if mode == "exposure":
            self.log_gain = nn.Parameter(torch.zeros(num_images, 3))
        else:
            self.matrix = nn.Parameter(torch.zeros(num_images, 3, 3))  # added to the identity
        self.bias = nn.Parameter(torch.zeros(num_images, 3))

    def forward(self, colors: Tensor, image_ids: Tensor) -> Tensor:
        """colors [B, H, W, 3], image_ids [B] (indices into the dataset's cameras)."""
        b = self.bias[image_ids][:, None, None, :]
        if self.mode == "exposure":
            return colors * torch.exp(self.log_gain[image_ids])[:, None, None, :] + b
        m = self.matrix[image_ids] + torch.eye(3, device=colors.device)
        return torch.einsum("bij,bhwj->bhwi", m, colors) + b
