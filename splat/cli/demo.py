"""`splat demo`: render a built-in procedural scene to a PNG."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from splat.errors import SplatError


@dataclass
class Demo:
    """Render a procedurally generated Gaussian scene to a PNG (no download needed)."""

    out: Path = Path("demo.png")
    """Where to write the PNG."""
    gaussians: int = 200_000
    """Number of Gaussians in the scene."""
    width: int = 800
    height: int = 600
    angle: float = 30.0
    """Orbit angle of the camera in degrees."""
    backend: str = "auto"
    """Rasterizer backend: auto, cpu, cuda or torch."""

    def main(self) -> int:
        import imageio.v3 as iio
        import torch

        from splat import procedural
        from splat.atomic import atomic_write
        from splat.rasterizer import rasterize

        if self.gaussians <= 0 or self.width <= 0 or self.height <= 0:
            raise SplatError("--gaussians, --width and --height must be positive")
        scene = procedural.surface_scene(self.gaussians, seed=0)
        viewmat = procedural.orbit_camera(self.angle)[None]
        K = procedural.intrinsics(self.width, self.height)[None]
        start = time.perf_counter()
        colors, alphas, meta = rasterize(
            **scene, viewmats=viewmat, Ks=K, width=self.width, height=self.height,
            backgrounds=torch.ones(1, 3), backend=self.backend,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        image = (colors[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        suffix = self.out.suffix.lower().lstrip(".") or "png"
        try:
            with atomic_write(self.out) as f:
                f.write(iio.imwrite("<bytes>", image, extension=f".{suffix}"))
        except OSError as err:
            raise SplatError(f"cannot write {self.out}: {err.strerror}") from err
        print(
            f"splat demo: {self.gaussians:,} Gaussians rendered at {self.width}x{self.height} "
            f"in {elapsed * 1e3:.0f} ms ({meta.backend} backend) -> {self.out}"
        )
        return 0
