"""Input checks for `rasterize`: every problem is a ValueError naming the argument."""

from __future__ import annotations

import torch
from torch import Tensor

from splat.rasterizer.constants import RENDER_MODES


def _check_tensor(name: str, x, shape: tuple, device: torch.device, dtype: torch.dtype | None = None) -> None:
    """shape entries: int (exact), None (any); dtype None means 'floating point'."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}, got {x.dtype}")
    if dtype is None and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.device != device:
        raise ValueError(f"{name} is on {x.device} but means is on {device}; put all inputs on one device")


def _cpu_scanner(tensors: list[Tensor]):
    """The CPU extension, if this process has loaded it and it can scan these
    tensors (float32, contiguous, on the CPU): its value checks skip torch's
    dispatches and thread wake-ups. None otherwise; a check never builds it."""
    from splat.rasterizer import build

    ext = build.loaded("cpu")
    if ext is None or not all(x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous() for x in tensors):
        return None
    return ext


def _has_zero_quaternion(quats: Tensor) -> bool:
    ext = _cpu_scanner([quats])
    if ext is not None:
        return ext.any_zero_quaternion(quats)
    # (a matrix-vector product: torch's reductions over a last dim of 4 are slow)
    return bool((quats.abs() @ quats.new_ones(4)).min() == 0)


def check_finite(named: dict[str, Tensor]) -> None:
    """ValueError naming the first tensor with a NaN or infinite value."""
    names, tensors = list(named), list(named.values())
    ext = _cpu_scanner(tensors)
    if ext is not None:
        bad = ext.first_non_finite(tensors)
        if bad >= 0:
            raise ValueError(f"{names[bad]} contains NaN or infinite values")
        return
    # A finite sum proves every element finite: one pass per tensor and a
    # single test of all the sums (per-tensor tests cost more than the sums on
    # small scenes). Only a sum that is not finite, possibly an overflow of
    # large finite values, needs the element-wise test.
    with torch.no_grad():
        if bool(torch.isfinite(torch.stack([x.sum() for x in tensors])).all()):
            return
        for name, x in named.items():
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} contains NaN or infinite values")


def validate_inputs(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height,
    sh_degree, near_plane, far_plane, eps2d, backgrounds, render_mode, tile_size, scan_colors=True,
) -> int | None:  # fmt: skip
    """Check every argument; returns the SH degree to use (None for plain colors).
    scan_colors=False leaves colors' values unscanned (the caller's backend checks them)."""
    if not isinstance(means, Tensor) or not means.is_floating_point():
        raise ValueError(f"means must be a floating-point torch.Tensor, got {getattr(means, 'dtype', type(means).__name__)}")
    device, dtype = means.device, means.dtype
    _check_tensor("means", means, (None, 3), device)
    N = means.shape[0]
    for name, x, shape in [
        ("quats", quats, (N, 4)),
        ("scales", scales, (N, 3)),
        ("opacities", opacities, (N,)),
        ("viewmats", viewmats, (None, 4, 4)),
    ]:
        _check_tensor(name, x, shape, device, dtype)
    C = viewmats.shape[0]
    if C == 0:
        raise ValueError("viewmats must hold at least one camera, got shape [0, 4, 4]")
    _check_tensor("Ks", Ks, (C, 3, 3), device, dtype)
    for name, v in (("width", width), ("height", height), ("tile_size", tile_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if tile_size > 64:
        raise ValueError(f"tile_size must be at most 64, got {tile_size}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if not (0 < near_plane < far_plane):
        raise ValueError(f"need 0 < near_plane < far_plane, got near_plane={near_plane}, far_plane={far_plane}")
    if eps2d < 0:
        raise ValueError(f"eps2d must be >= 0, got {eps2d}")
    if N and _has_zero_quaternion(quats):
        raise ValueError("quats contains zero-length quaternions")
    if any(K[0][0] <= 0 or K[1][1] <= 0 for K in Ks.tolist()):  # (a list: 1 us, torch's ops 10)
        raise ValueError("Ks must have positive focal lengths fx = K[0,0] and fy = K[1,1]")

    if not isinstance(colors, Tensor):
        raise ValueError(f"colors must be a torch.Tensor, got {type(colors).__name__}")
    if colors.dim() == 2:
        _check_tensor("colors", colors, (N, None), device, dtype)
        if sh_degree is not None:
            raise ValueError("sh_degree is set but colors is [N, D]; SH coefficients must be [N, K, 3]")
        degree = None
    elif colors.dim() == 3:
        _check_tensor("colors", colors, (N, None, 3), device, dtype)
        K = colors.shape[1]
        degree = sh_degree if sh_degree is not None else int(round(K**0.5)) - 1
        if sh_degree is None and (degree + 1) ** 2 != K:
            raise ValueError(f"colors has {K} SH coefficients, not a square number; pass sh_degree")
        if not (0 <= degree <= 3):
            raise ValueError(f"sh_degree must be in 0..3, got {degree}")
        if (degree + 1) ** 2 > K:
            raise ValueError(f"sh_degree {degree} needs {(degree + 1) ** 2} coefficients, colors has {K}")
    else:
        raise ValueError(f"colors must be [N, D] colors or [N, K, 3] SH coefficients, got shape {list(colors.shape)}")
    if colors.shape[-1] == 0:
        raise ValueError("colors must have at least one channel")
    if backgrounds is not None:
        D = 3 if colors.dim() == 3 else colors.shape[-1]
        _check_tensor("backgrounds", backgrounds, (C, D), device, dtype)
    named = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "viewmats": viewmats,
             "Ks": Ks, "colors": colors if scan_colors else None, "backgrounds": backgrounds}  # fmt: skip
    check_finite({name: x for name, x in named.items() if x is not None and x.numel()})
    return degree
