"""Moving scenes between coordinate frames: similarity transforms of Gaussians, SH included.

Used for `GaussianScene.normalization` (back to a dataset's original frame) and for
.spz, whose files live in a y-up, z-back frame (RUB) rather than the 3DGS one (RDF).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from splat.scene import GaussianScene

# RDF (3DGS / OpenCV: x right, y down, z forward) <-> RUB (spz: x right, y up, z back):
# a 180 degree turn about x, its own inverse.
RDF_TO_RUB = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _quat_from_rotmat(R: Tensor) -> Tensor:
    """[3, 3] rotation -> [4] unit quaternion wxyz (float64)."""
    m = R.to(torch.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    cands = torch.stack([
        torch.stack([1 + tr, m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]),
        torch.stack([m[2, 1] - m[1, 2], 1 + m[0, 0] - m[1, 1] - m[2, 2], m[0, 1] + m[1, 0], m[0, 2] + m[2, 0]]),
        torch.stack([m[0, 2] - m[2, 0], m[0, 1] + m[1, 0], 1 - m[0, 0] + m[1, 1] - m[2, 2], m[1, 2] + m[2, 1]]),
        torch.stack([m[1, 0] - m[0, 1], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], 1 - m[0, 0] - m[1, 1] + m[2, 2]]),
    ])  # fmt: skip
    # the row with the largest diagonal term is the numerically stable one
    q = cands[torch.argmax(torch.stack([tr, m[0, 0], m[1, 1], m[2, 2]]))]
    return q / q.norm()


def _quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of wxyz quaternions, broadcasting."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)  # fmt: skip


def sh_rotation(R: Tensor, degree: int) -> list[Tensor]:
    """Per band l = 1..degree, the [2l+1, 2l+1] matrix D with coeffs' = D @ coeffs
    for a radiance field rotated by R (f'(d) = f(R^T d)).

    Found by least squares on random directions: exact up to float64 round-off, and
    it uses the rasterizer's own SH basis, so signs and ordering always agree.
    """
    from splat.rasterizer.reference import spherical_harmonics

    R = R.to(torch.float64)
    gen = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(64, 3, generator=gen, dtype=torch.float64), dim=-1)
    k = (degree + 1) ** 2
    eye = torch.eye(k, dtype=torch.float64)[None, :, :, None]  # one-hot coefficient sets

    def basis(d: Tensor) -> Tensor:  # [M, K] values of every basis function
        return spherical_harmonics(degree, d[:, None, :].expand(-1, k, -1), eye.expand(d.shape[0], -1, -1, -1))[..., 0]

    y, y_rot = basis(dirs), basis(dirs @ R)  # dirs @ R == (R^T d) row-wise
    out = []
    for band in range(1, degree + 1):
        sl = slice(band * band, (band + 1) ** 2)
        # Y(R^T d) = Y(d) @ D, so f'(d) = Y(R^T d) @ c = Y(d) @ (D @ c)
        out.append(torch.linalg.lstsq(y[:, sl], y_rot[:, sl]).solution)
    return out


def apply_similarity(scene: GaussianScene, matrix: Tensor) -> GaussianScene:
    """Transform every Gaussian by a 4x4 similarity x' = s R x + t (s > 0, R a rotation)."""
    m = matrix.to(torch.float64).cpu()
    A, t = m[:3, :3], m[:3, 3]
    s = torch.linalg.det(A).abs() ** (1.0 / 3.0)
    R = A / s
    if torch.linalg.det(R) < 0 or not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-4):
        raise ValueError("transform is not a similarity (uniform scale times a proper rotation)")
    dev, dtype = scene.means.device, scene.means.dtype
    means = (scene.means.to(torch.float64) @ (s * R).T.to(dev) + t.to(dev)).to(dtype)
    quats = _quat_multiply(_quat_from_rotmat(R).to(dev), scene.quats.to(torch.float64)).to(dtype)
    log_scales = scene.log_scales + torch.log(s).item()
    shN = scene.shN
    if scene.sh_degree > 0:
        bands = []
        for band, D in enumerate(sh_rotation(R, scene.sh_degree), start=1):
            c = scene.shN[:, band * band - 1 : (band + 1) ** 2 - 1].to(torch.float64)  # [N, 2l+1, 3]
            bands.append(torch.einsum("ij,njc->nic", D.to(dev), c))
        shN = torch.cat(bands, dim=1).to(dtype)
    norm = m if scene.normalization is None else m @ scene.normalization.to(torch.float64).cpu()
    return replace(scene, means=means, quats=quats, log_scales=log_scales, shN=shN,
                   normalization=norm.to(dtype=torch.float32))  # fmt: skip
