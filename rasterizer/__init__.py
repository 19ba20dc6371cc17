"""splat.rasterizer: differentiable tile rasterizer for 3D Gaussians.

Backends: "torch" (pure PyTorch reference), "cpu" (C++ extension),
"cuda" (CUDA extension); "auto" picks the fastest one available.
"""

from splat.rasterizer.api import RasterMeta, rasterize

__all__ = ["rasterize", "RasterMeta"]
