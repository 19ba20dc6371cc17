"""Shared fixtures: where the real data lives, and small random scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

import splat  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads its OpenMP runtime)
import torch

from splat.shared_data import shared_data_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Real scenes: $SPLAT_DATA, default ../shared/data beside the repository."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set SPLAT_DATA)")
    return path


def random_scene(
    n: int = 200,
    cameras: int = 1,
    channels: int = 3,
    sh_degree: int | None = None,
    width: int = 48,
    height: int = 40,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Gaussians in front of `cameras` cameras looking roughly down +z."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.6
    means[:, 2] += 3.0
    scales = torch.rand(n, 3, generator=g) * 0.12 + 0.01
    if sh_degree is None:
        colors = torch.rand(n, channels, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3
    viewmats = torch.eye(4).repeat(cameras, 1, 1)
    for c in range(1, cameras):  # small rotations and shifts
        angle = 0.15 * c
        viewmats[c, 0, 0] = viewmats[c, 2, 2] = torch.cos(torch.tensor(angle))
        viewmats[c, 0, 2], viewmats[c, 2, 0] = torch.sin(torch.tensor(angle)), -torch.sin(torch.tensor(angle))
        viewmats[c, :3, 3] = torch.tensor([0.2 * c, -0.1 * c, 0.3 * c])
    f = 1.1 * width
    Ks = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]).repeat(cameras, 1, 1)
    scene = dict(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        scales=scales,
        opacities=torch.rand(n, generator=g) * 0.9 + 0.05,
        colors=colors,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
    )
    return {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in scene.items()}


@pytest.fixture
def make_scene():
    return random_scene


@pytest.fixture(scope="session")
def cpu_backend():
    """Builds the C++ backend once; a build failure fails the tests that need it."""
    from splat.rasterizer import backend_cpu

    backend_cpu.load_extension()
    return backend_cpu


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def train_quality():
    return load_benchmark("train_quality")


@pytest.fixture
def raster_timeline():
    return load_benchmark("raster_timeline")


@pytest.fixture
def ratio_by_size():
    return load_benchmark("ratio_by_size")
