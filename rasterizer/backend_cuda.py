"""CUDA backend: the four stages over the CUDA extension (csrc/cuda), built on first use.

Same signatures and outputs as `reference.py` and `backend_cpu.py`; inputs are
float32 CUDA tensors (checked by `rasterize`). Kernels live in csrc/cuda and
share their math with the CPU backend through csrc/include. The extension is
compiled on first use only (`build.load_cuda`), never at import.

Determinism: forward images are deterministic; the accumulated weights and
every backward gradient are summed with float atomics, so they can differ in
the last bits from run to run (the CPU backend is bit-deterministic).
"""

from splat.rasterizer import build
from splat.rasterizer.compiled import CompiledBackend

_backend = CompiledBackend("cuda", build.load_cuda)
NAME = _backend.NAME
load_extension = _backend.load_extension
project_gaussians = _backend.project_gaussians
sh_colors = _backend.sh_colors
intersect_tiles = _backend.intersect_tiles
blend = _backend.blend
