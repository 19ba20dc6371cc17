"""The four stages over a compiled extension (the CPU or the CUDA one).

Both extensions expose the same ops with the same signatures, but for the
CPU's extra outputs that its backward takes back (the blend's packed rows and
the SH direction Jacobian, see _Blend and _ShColors), so one set of autograd
Functions serves both: each Function takes the extension module as its first
argument. Same stage signatures as `reference.py`; inputs are float32 tensors
on the extension's device (checked by `rasterize`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

import torch
from torch import Tensor

from splat.rasterizer.validation import check_finite


def _c(x: Tensor) -> Tensor:
    """x in contiguous memory for the extension, which only reads it (so no
    detach(): 0.07 us a tensor instead of 0.4, for some 40 tensors a render)."""
    return x.contiguous()


def _zeros_if_none(grad: Tensor | None, like: Tensor, shape: list[int]) -> Tensor:
    """The gradient of an output backward did not reach, as zeros of like's dtype and device."""
    return grad if grad is not None else like.new_zeros(shape)


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ext, means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near, far, antialiased):
        radii, means2d, depths, conics, comps = ext.project_forward(
            _c(means), _c(quats), _c(scales), _c(opacities), _c(viewmats), _c(Ks),
            width, height, eps2d, near, far, antialiased,
        )  # fmt: skip
        ctx.ext = ext
        ctx.save_for_backward(means, quats, scales, viewmats, Ks, radii)
        ctx.settings = (width, height, eps2d, near, far, antialiased)
        ctx.mark_non_differentiable(radii)
        ctx.set_materialize_grads(False)  # None for outputs backward did not reach; radii never is
        return radii, means2d, depths, conics, comps

    @staticmethod
    def backward(ctx, v_radii, v_means2d, v_depths, v_conics, v_comps):
        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        viewmat_grad = ctx.needs_input_grad[5]  # v_viewmats is None without it
        C, N = radii.shape[:2]
        v_means2d = _zeros_if_none(v_means2d, means, [C, N, 2])
        v_conics = _zeros_if_none(v_conics, means, [C, N, 3])
        # depths and compensations are often unused: empty stands for zeros
        v_depths = v_depths if v_depths is not None else means.new_empty(0)
        v_comps = v_comps if v_comps is not None else means.new_empty(0)
        v_means, v_quats, v_scales, v_viewmats = ctx.ext.project_backward(
            _c(means), _c(quats), _c(scales), _c(viewmats), _c(Ks), *ctx.settings, radii,
            _c(v_means2d), _c(v_depths), _c(v_conics), _c(v_comps), viewmat_grad,
        )  # fmt: skip
        return None, v_means, v_quats, v_scales, None, v_viewmats, None, None, None, None, None, None, None


class _ShColors(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ext, degree, means, viewmats, coeffs, check_coeffs):
        # the CPU's forward also returns the direction Jacobian (if asked for),
        # which its backward takes back instead of reading the coefficients again
        colors, raw, *jacobian = ext.sh_colors_forward(degree, _c(means), _c(viewmats), _c(coeffs),
                                                       ctx.needs_input_grad[2] or ctx.needs_input_grad[3])
        # A non-finite coefficient the pass read makes its unclamped color
        # non-finite; so can an overflow of finite ones, which the exact scan
        # tells apart.
        if check_coeffs and ext.first_non_finite([raw]) >= 0:
            check_finite({"colors": coeffs})
        ctx.ext, ctx.degree = ext, degree
        ctx.save_for_backward(means, viewmats, coeffs, raw, *jacobian)
        return colors

    @staticmethod
    def backward(ctx, v_colors):
        means, viewmats, coeffs, raw, *jacobian = ctx.saved_tensors
        v_means, v_coeffs, v_viewmats = ctx.ext.sh_colors_backward(
            ctx.degree, _c(means), _c(viewmats), _c(coeffs), raw, _c(v_colors), *jacobian
        )
        return None, None, v_means, v_viewmats if ctx.needs_input_grad[3] else None, v_coeffs, None


class _Blend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ext, means2d, conics, colors, opacities, isect_offsets, flatten_ids, width, height, tile_size,
                absgrad, strided_grads):
        # the CPU's blend also returns its packed per-Gaussian rows, which its backward takes back
        render, alphas, final_T, last_ids, weights, counts, *packed = ext.blend_forward(
            _c(means2d), _c(conics), _c(colors), _c(opacities), isect_offsets, flatten_ids, width, height, tile_size
        )
        ctx.save_for_backward(means2d, conics, colors, opacities, isect_offsets, flatten_ids, final_T, last_ids,
                              *packed)  # fmt: skip
        ctx.ext, ctx.settings = ext, (width, height, tile_size)
        ctx.absgrad, ctx.strided_grads = absgrad, strided_grads
        ctx.means2d = means2d if absgrad else None  # backward sets .absgrad on it
        ctx.mark_non_differentiable(weights, counts)
        ctx.set_materialize_grads(False)  # no zero-filled gradients for weights and counts
        return render, alphas, weights, counts

    @staticmethod
    def backward(ctx, v_render, v_alphas, v_weights, v_counts):
        means2d, conics, colors, opacities, isect_offsets, flatten_ids, final_T, last_ids, *packed = ctx.saved_tensors
        v_render = _zeros_if_none(v_render, final_T, [*final_T.shape, colors.shape[-1]])
        v_alphas = _zeros_if_none(v_alphas, final_T, [*final_T.shape, 1])
        if not ctx.strided_grads:
            v_render, v_alphas = _c(v_render), _c(v_alphas)
        v_means2d, v_conics, v_colors, v_opacities, v_abs = ctx.ext.blend_backward(
            _c(means2d), _c(conics), _c(colors), _c(opacities), isect_offsets, flatten_ids, *ctx.settings,
            final_T, last_ids, v_render, v_alphas, ctx.absgrad, *packed,
        )  # fmt: skip
        if ctx.absgrad:
            ctx.means2d.absgrad = v_abs
        return None, v_means2d, v_conics, v_colors, v_opacities, None, None, None, None, None, None, None


class CompiledBackend:
    """A backend (NAME + the four stages) over the extension `load()` returns.

    sh_checks_coeffs: sh_colors raises the ValueError `rasterize` would for
    non-finite SH coefficients (needs the extension's first_non_finite), so
    `rasterize` need not scan them first when the pass reads every one.
    strided_grads: the extension's blend_backward reads the pixel gradients
    with any strides (the expanded ones of a sum() loss need no copy).
    """

    def __init__(self, name: str, load: Callable[[], ModuleType], sh_checks_coeffs: bool = False,
                 strided_grads: bool = False):  # fmt: skip
        self.NAME = name
        self._load = load
        self.SH_CHECKS_COEFFS = sh_checks_coeffs
        self._strided_grads = strided_grads

    def load_extension(self) -> ModuleType:
        return self._load()

    def project_gaussians(self, means, quats, scales, opacities, viewmats, Ks, width, height,
                          eps2d=0.3, near_plane=0.01, far_plane=1e10, antialiased=False):  # fmt: skip
        """See reference.project_gaussians."""
        if opacities is None:
            opacities = torch.full_like(means[:, 0], -1.0)  # negative: plain 3.33-sigma extent
        return _Project.apply(self._load(), means, quats, scales, opacities, viewmats, Ks, width, height,
                              float(eps2d), float(near_plane), float(far_plane), bool(antialiased))  # fmt: skip

    def sh_colors(self, degree: int, means: Tensor, viewmats: Tensor, coeffs: Tensor) -> Tensor:
        """means [N, 3], viewmats [C, 4, 4], coeffs [N, K, 3] -> colors [C, N, 3]. See reference.sh_colors."""
        if coeffs.dim() != 3:
            raise ValueError(f"the {self.NAME} backend takes SH coefficients as [N, K, 3]")
        return _ShColors.apply(self._load(), degree, means, viewmats, coeffs, self.SH_CHECKS_COEFFS)

    @torch.no_grad()
    def intersect_tiles(self, means2d, radii, depths, tile_size, tile_width, tile_height, conics=None,
                        opacities=None):  # fmt: skip
        """See reference.intersect_tiles."""
        ext = self._load()
        if conics is None:  # empty: whole tile rectangles
            conics = opacities = means2d.new_empty(0)
        return tuple(ext.intersect_tiles(_c(means2d), _c(radii), _c(depths), _c(conics), _c(opacities),
                                         tile_size, tile_width, tile_height))  # fmt: skip

    def blend(self, means2d, conics, colors, opacities, isect_offsets, flatten_ids, width, height, tile_size,
              absgrad=False):  # fmt: skip
        """See reference.blend."""
        return _Blend.apply(self._load(), means2d, conics, colors, opacities, isect_offsets, flatten_ids,
                            width, height, tile_size, absgrad, self._strided_grads)  # fmt: skip
