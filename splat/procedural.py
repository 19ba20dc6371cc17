"""Procedurally generated Gaussian scenes: the built-in demo and benchmark inputs.

Gaussians are placed on surfaces (spheres and a checkered ground plane), with
sizes and opacities distributed like those of a trained 3DGS scene, so the
rasterizer sees realistic depth complexity rather than a saturated fog.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814


def _sphere_points(n: int, center, radius: float, g: torch.Generator) -> Tensor:
    d = torch.randn(n, 3, generator=g)
    return torch.tensor(center) + radius * d / d.norm(dim=-1, keepdim=True)  # [n, 3]


def surface_scene(n: int, seed: int = 0, sh_degree: int = 3) -> dict[str, Tensor]:
    """n Gaussians on three spheres and a ground plane, world units ~ 2.

    Returns means [n,3], quats [n,4], scales [n,3], opacities [n], sh [n,K,3].
    """
    g = torch.Generator().manual_seed(seed)
    n_plane = n // 3
    spheres = [((-0.6, 0.0, 0.0), 0.45, (0.9, 0.2, 0.2)), ((0.55, 0.1, 0.2), 0.35, (0.2, 0.7, 0.3)),
               ((0.0, 0.15, -0.7), 0.3, (0.2, 0.3, 0.9))]  # fmt: skip
    counts = [(n - n_plane) // 3] * 2 + [n - n_plane - 2 * ((n - n_plane) // 3)]
    means, colors = [], []
    for (center, radius, rgb), k in zip(spheres, counts):
        means.append(_sphere_points(k, center, radius, g))
        colors.append(torch.tensor(rgb).expand(k, 3) * (0.8 + 0.2 * torch.rand(k, 1, generator=g)))
    plane = (torch.rand(n_plane, 2, generator=g) - 0.5) * 3.0
    means.append(torch.stack([plane[:, 0], torch.full((n_plane,), 0.45), plane[:, 1]], dim=-1))
    checker = ((torch.floor(plane[:, 0] * 4) + torch.floor(plane[:, 1] * 4)) % 2)[:, None]
    colors.append(0.25 + 0.5 * checker.expand(n_plane, 3))
    means = torch.cat(means)
    means = means + 0.003 * torch.randn(means.shape, generator=g)
    # spacing ~ surface area / n; log-normal sizes and bimodal opacities as after training
    spacing = math.sqrt(12.0 / max(n, 1))
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.4) * spacing * 0.7
    opacities = torch.sigmoid(torch.randn(n, generator=g) * 2.0 + 2.0)
    K = (sh_degree + 1) ** 2
    sh = torch.zeros(n, K, 3)
    sh[:, 0] = (torch.cat(colors) - 0.5) / SH_C0
    sh[:, 1:] = 0.05 * torch.randn(n, K - 1, 3, generator=g)
    quats = torch.randn(n, 4, generator=g)
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=sh)


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> Tensor:
    """World-to-camera matrix [4, 4], OpenCV convention (+y is down in the image,
    so `up` here is the world's down direction for y-down scenes)."""
    eye, target, up = (torch.tensor(v, dtype=torch.float32) for v in (eye, target, up))
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    viewmat = torch.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye
    return viewmat


def intrinsics(width: int, height: int, fov_x_deg: float = 60.0) -> Tensor:
    f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def orbit_camera(angle_deg: float, radius: float = 3.2, height: float = -1.2) -> Tensor:
    a = math.radians(angle_deg)
    # the ground plane is at y = +0.45 (y points down), so the camera sits at negative y
    return look_at((radius * math.sin(a), height, -radius * math.cos(a)), (0.0, 0.1, 0.0), (0.0, -1.0, 0.0))
