"""Backend selection. Every backend module exposes the same four stages:
project_gaussians, sh_colors, intersect_tiles, blend (and NAME)."""

from __future__ import annotations

import types
import warnings

import torch

from splat.errors import BuildError

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _cpu() -> types.ModuleType:
    from splat.rasterizer import backend_cpu

    backend_cpu.load_extension()  # raises BuildError with what to install
    return backend_cpu


def _cuda() -> types.ModuleType:
    from splat.rasterizer import backend_cuda

    backend_cuda.load_extension()
    return backend_cuda


def _reference() -> types.ModuleType:
    from splat.rasterizer import reference

    return reference


def select(name: str, means: torch.Tensor) -> types.ModuleType:
    """The stages module for `backend=name` and tensors like `means`."""
    if name == "torch":
        return _reference()
    if name == "cpu":
        if means.device.type != "cpu" or means.dtype != torch.float32:
            raise ValueError(f"backend='cpu' needs float32 CPU tensors, got {means.dtype} on {means.device}")
        return _cpu()
    if name == "cuda":
        if means.device.type != "cuda" or means.dtype != torch.float32:
            raise ValueError(f"backend='cuda' needs float32 CUDA tensors, got {means.dtype} on {means.device}")
        return _cuda()
    if name != "auto":
        raise ValueError(f"backend must be 'auto', 'torch', 'cpu' or 'cuda', got {name!r}")

    compiled, loader = ("cuda", _cuda) if means.device.type == "cuda" else ("cpu", _cpu)
    if means.dtype != torch.float32:
        _warn_once(f"dtype-{means.dtype}", f"splat: {means.dtype} inputs use the slow torch reference rasterizer (compiled backends are float32)")
        return _reference()
    try:
        return loader()
    except BuildError as err:
        _warn_once(compiled, f"splat: the {compiled} rasterizer backend is unavailable ({err}); falling back to the slow torch reference")
        return _reference()
