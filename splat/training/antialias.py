"""Mip-Splatting's 3D smoothing filter (Yu et al. 2024).

Each Gaussian is convolved with an isotropic Gaussian whose size is set by the
highest sampling rate any training camera sees it with:
sigma_filter = sqrt(0.2) * depth / focal, the minimum over the cameras that see
it. The filtered Gaussian has variance s² + sigma² per axis and opacity scaled by
sqrt(det Σ / det(Σ + σ²I)) so its total mass is preserved. Together with the
rasterizer's `antialiased=True` (the 2D mip filter) this is Mip-Splatting.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def compute_filter_3d(means: Tensor, viewmats: Tensor, Ks: Tensor, widths: Tensor, heights: Tensor,
                      near: float = 0.2, margin: float = 0.15, chunk: int = 16) -> Tensor:
    """sigma_filter [N] for means [N, 3] seen by cameras viewmats [C, 4, 4], Ks [C, 3, 3]."""
    n = means.shape[0]
    dev = means.device
    best = torch.full((n,), float("inf"), device=dev)
    farthest = torch.zeros(n, device=dev)
    for s in range(0, len(viewmats), chunk):
        V, K = viewmats[s:s + chunk].to(dev), Ks[s:s + chunk].to(dev)
        W, H = widths[s:s + chunk].to(dev).float(), heights[s:s + chunk].to(dev).float()
        p = torch.einsum("cij,nj->cni", V[:, :3, :3], means) + V[:, None, :3, 3]  # [c, N, 3]
        z = p[..., 2]
        x = p[..., 0] / z.clamp(min=1e-6) * K[:, None, 0, 0] + K[:, None, 0, 2]
        y = p[..., 1] / z.clamp(min=1e-6) * K[:, None, 1, 1] + K[:, None, 1, 2]
        inside = ((x >= -margin * W[:, None]) & (x <= (1 + margin) * W[:, None])
                  & (y >= -margin * H[:, None]) & (y <= (1 + margin) * H[:, None]) & (z > near))  # fmt: skip
        rate = z / K[:, None, 0, 0]  # world size of one pixel at that depth
        best = torch.minimum(best, torch.where(inside, rate, float("inf")).min(0).values)
        farthest = torch.maximum(farthest, torch.where(inside, rate, 0.0).max(0).values)
    unseen = ~torch.isfinite(best)
    best[unseen] = farthest.max() if farthest.max() > 0 else 1e-3
    return best * (0.2**0.5)


def apply_filter_3d(log_scales: Tensor, opacities: Tensor, filter_3d: Tensor) -> tuple[Tensor, Tensor]:
    """Filtered (linear scales [N, 3], opacities [N]) from log-scales, activated opacities."""
    var = torch.exp(2 * log_scales)
    var_f = var + filter_3d[:, None] ** 2
    coef = torch.sqrt(torch.prod(var, -1) / torch.prod(var_f, -1))
    return torch.sqrt(var_f), opacities * coef
