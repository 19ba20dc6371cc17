"""Image losses and metrics: L1, SSIM (separable Gaussian window), PSNR.

Also the composable loss terms a `Trainer` sums: each is a callable taking the
step's `StepContext` and returning a scalar (or None to skip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from splat.training.loop import Trainer


@lru_cache(maxsize=8)
def _window(size: int, sigma: float, device: str, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(device=device, dtype=dtype)


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5, reduce: bool = True) -> Tensor:
    """SSIM of images [B, H, W, C] (or [H, W, C]) in [0, 1], 'valid' Gaussian window
    (like pytorch-msssim / gsplat's fused-ssim with padding="valid").

    The 11x11 Gaussian is applied as two 1-D convolutions over the five maps
    (x, y, x², y², xy) stacked as channels: ~5x cheaper than a 2-D window.
    """
    if x.dim() == 3:
        x, y = x[None], y[None]
    b, h, w, c = x.shape
    x, y = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 5C, H, W]
    g = _window(window, sigma, str(x.device), x.dtype)
    n = maps.shape[1]
    maps = F.conv2d(maps, g.view(1, 1, 1, -1).expand(n, 1, 1, window), groups=n)
    maps = F.conv2d(maps, g.view(1, 1, -1, 1).expand(n, 1, window, 1), groups=n)
    mx, my, sxx, syy, sxy = maps.split(c, dim=1)
    mx2, my2, mxy = mx * mx, my * my, mx * my
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mxy + c1) * (2 * (sxy - mxy) + c2)
    den = (mx2 + my2 + c1) * ((sxx - mx2) + (syy - my2) + c2)
    s = num / den
    return s.mean() if reduce else s.mean(dim=(1, 2, 3))


def psnr(x: Tensor, y: Tensor) -> Tensor:
    mse = F.mse_loss(x.clamp(0, 1), y)
    return -10.0 * torch.log10(mse.clamp(min=1e-20))


@dataclass
class StepContext:
    """What one training step produced; loss terms read from it."""

    trainer: "Trainer"
    step: int
    render: Tensor  # [1, H, W, 3] after appearance correction
    target: Tensor  # [1, H, W, 3]
    alphas: Tensor  # [1, H, W, 1]
    meta: Any  # RasterMeta
    mask: Tensor | None = None  # [1, H, W] bool valid pixels
    extras: dict[str, Any] = field(default_factory=dict)


class LossTerm(Protocol):
    name: str

    def __call__(self, ctx: StepContext) -> Tensor | None: ...


@dataclass
class PhotometricLoss:
    """(1 - l) L1 + l (1 - SSIM): the 3DGS image loss."""

    ssim_lambda: float = 0.2
    name: str = "photometric"

    def __call__(self, ctx: StepContext) -> Tensor:
        r, t = ctx.render, ctx.target
        if ctx.mask is not None:
            m = ctx.mask[..., None].to(r.dtype)
            r, t = r * m, t * m
        loss = (1 - self.ssim_lambda) * (r - t).abs().mean()
        if self.ssim_lambda > 0:
            loss = loss + self.ssim_lambda * (1.0 - ssim(r, t))
        return loss


@dataclass
class OpacityReg:
    """weight x mean opacity (3DGS-MCMC)."""

    weight: float
    name: str = "opacity_reg"

    def __call__(self, ctx: StepContext) -> Tensor | None:
        if self.weight <= 0:
            return None
        return self.weight * torch.sigmoid(ctx.trainer.params["opacities"]).mean()


@dataclass
class ScaleReg:
    """weight x mean linear scale (3DGS-MCMC)."""

    weight: float
    name: str = "scale_reg"

    def __call__(self, ctx: StepContext) -> Tensor | None:
        if self.weight <= 0:
            return None
        return self.weight * torch.exp(ctx.trainer.params["scales"]).mean()


@dataclass
class FunctionLoss:
    """Wrap a plain function `fn(ctx) -> Tensor | None` as a named term."""

    fn: Callable[[StepContext], Tensor | None]
    name: str = "custom"

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return self.fn(ctx)


__all__ = ["ssim", "psnr", "StepContext", "LossTerm", "PhotometricLoss", "OpacityReg", "ScaleReg", "FunctionLoss"]
