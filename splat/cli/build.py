"""`splat build`: compile the rasterizer extensions now instead of on first use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Build:
    """Compile the C++ rasterizer backend (and the CUDA one when a GPU is usable)."""

    cuda: bool = False
    """Also build the CUDA backend (needs a CUDA build of torch and a GPU)."""

    def main(self) -> int:
        from splat.rasterizer import build

        ext = build.load_cpu()
        print(f"splat build: cpu backend ready ({build.build_dir()}), {ext.num_threads()} threads")
        if self.cuda:
            build.load_cuda()
            print("splat build: cuda backend ready")
        return 0
