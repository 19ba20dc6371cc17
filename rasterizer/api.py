"""`rasterize`: the one entry point; composes the stages of the chosen backend."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from splat.rasterizer import backends
from splat.rasterizer.validation import check_finite, validate_inputs

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
Backend = Literal["auto", "torch", "cpu", "cuda"]


@dataclass
class RasterMeta:
    """Per camera and Gaussian by-products of a render (C cameras, N Gaussians).

    `means2d` is the tensor the blending stage consumed: call
    `meta.means2d.retain_grad()` before backward to read its `.grad`
    (densification); with `absgrad=True` backward also sets `meta.means2d.absgrad`.
    """

    radii: Tensor  # [C, N, 2] int32, pixel half-extent in x and y; 0 = not rendered
    means2d: Tensor  # [C, N, 2] projected centers in pixels
    depths: Tensor  # [C, N] camera-space z
    conics: Tensor  # [C, N, 3] inverse 2D covariance (xx, xy, yy)
    opacities: Tensor  # [C, N] opacity used for blending (compensated when antialiased)
    accum_weights: Tensor  # [C, N] sum over pixels of alpha * T (importance)
    pixel_counts: Tensor  # [C, N] int32, pixels each Gaussian contributed to
    tiles_per_gauss: Tensor  # [C, N] int32, tiles listing the Gaussian (those of its rectangle it reaches)
    isect_offsets: Tensor  # [C, tile_height, tile_width] int32
    flatten_ids: Tensor  # [M] int32, c * N + n, front to back per tile
    width: int
    height: int
    tile_size: int
    backend: str

    def __getitem__(self, key: str):
        # gsplat-style access (meta["means2d"]) for code written against gsplat
        return getattr(self, key)


def _sh_pass_checks_colors(stages, degree: int | None, colors: Tensor, render_mode: str) -> bool:
    """Whether the stages' SH pass reads every coefficient and raises for a
    non-finite one (the CPU backend's does): then rasterize skips its own
    scan of them, 19 MB of memory on 100k Gaussians, 2 % of a render."""
    return (
        getattr(stages, "SH_CHECKS_COEFFS", False)
        and degree is not None
        and colors.shape[1] == (degree + 1) ** 2
        and render_mode not in ("D", "ED")
    )


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz, need not be normalized
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N] in [0, 1]
    colors: Tensor,  # [N, D] or SH coefficients [N, K, 3]
    viewmats: Tensor,  # [C, 4, 4] world-to-camera [R t; 0 0 0 1], OpenCV (x right, y down, z forward)
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: RenderMode = "RGB",
    antialiased: bool = False,
    tile_size: int = 16,
    absgrad: bool = False,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor, RasterMeta]:
    """Render 3D Gaussians into C cameras; differentiable.

    Returns colors [C, H, W, D'] (D' = D, 1 for "D"/"ED", D + 1 for "RGB+D"/"RGB+ED"),
    alphas [C, H, W, 1] and a `RasterMeta`. Gradients flow to means, quats,
    scales, opacities, colors (or SH coefficients), viewmats and backgrounds.
    """
    degree = validate_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        sh_degree, near_plane, far_plane, eps2d, backgrounds, render_mode, tile_size, scan_colors=False,
    )  # fmt: skip
    stages = backends.select(backend, means)
    if colors.numel() and not _sh_pass_checks_colors(stages, degree, colors, render_mode):
        check_finite({"colors": colors})
    C, N = viewmats.shape[0], means.shape[0]

    radii, means2d, depths, conics, compensations = stages.project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height,
        eps2d, near_plane, far_plane, antialiased,
    )  # fmt: skip
    blend_opacities = opacities[None] * compensations if antialiased else opacities[None].expand(C, N)

    bg = backgrounds
    if render_mode in ("D", "ED"):
        point_colors, bg = depths[..., None], None
    elif degree is None:
        point_colors = colors[None].expand(C, -1, -1)  # [C, N, D]
    else:
        point_colors = stages.sh_colors(degree, means, viewmats, colors)  # [C, N, 3]
    if render_mode in ("RGB+D", "RGB+ED"):
        point_colors = torch.cat([point_colors, depths[..., None]], dim=-1)
        if bg is not None:
            bg = torch.cat([bg, torch.zeros_like(bg[:, :1])], dim=-1)

    tile_w, tile_h = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tiles_per_gauss, isect_offsets, flatten_ids = stages.intersect_tiles(
        means2d, radii, depths, tile_size, tile_w, tile_h, conics, blend_opacities
    )
    render, alphas, weights, pixel_counts = stages.blend(
        means2d, conics, point_colors.contiguous(), blend_opacities.contiguous(),
        isect_offsets, flatten_ids, width, height, tile_size, absgrad,
    )  # fmt: skip
    if bg is not None:
        render = render + (1.0 - alphas) * bg[:, None, None, :]
    if render_mode in ("ED", "RGB+ED"):
        # expected depth: normalize the blended depth by the blended opacity
        depth = render[..., -1:] / alphas.clamp(min=1e-10)
        render = torch.cat([render[..., :-1], depth], dim=-1)

    meta = RasterMeta(
        radii=radii, means2d=means2d, depths=depths, conics=conics, opacities=blend_opacities,
        accum_weights=weights, pixel_counts=pixel_counts, tiles_per_gauss=tiles_per_gauss,
        isect_offsets=isect_offsets, flatten_ids=flatten_ids,
        width=width, height=height, tile_size=tile_size, backend=stages.NAME,
    )  # fmt: skip
    return render, alphas, meta
