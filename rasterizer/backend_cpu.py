"""CPU backend: the four stages over the C++ extension (csrc/cpu), built on first use.

Same signatures as `reference.py`; inputs are float32 CPU tensors (checked by
`rasterize`). Backward passes are hand-written in csrc/cpu; results are
bit-identical run to run and for any thread count.
"""

from splat.rasterizer import build
from splat.rasterizer.compiled import CompiledBackend

_backend = CompiledBackend("cpu", build.load_cpu, sh_checks_coeffs=True, strided_grads=True)
NAME = _backend.NAME
SH_CHECKS_COEFFS = _backend.SH_CHECKS_COEFFS
load_extension = _backend.load_extension
project_gaussians = _backend.project_gaussians
sh_colors = _backend.sh_colors
intersect_tiles = _backend.intersect_tiles
blend = _backend.blend
