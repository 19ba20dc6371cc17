"""Scene normalization: a similarity transform into a canonical frame, and back.

Trainers work best when the scene sits near the origin at unit scale, so
loaders map the world into a normalized frame::

    x_norm = scale * R @ x_orig + t        (transform = [[scale * R, t], [0, 1]])

Cameras stay rigid in the normalized frame (depths are multiplied by `scale`,
so projections are unchanged). `Normalization` keeps the transform so that
exports (points, Gaussians, cameras) can go back to the user's original frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

NormalizeMode = Literal["cameras", "points", "none"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _like(arr: np.ndarray, ref):
    return torch.as_tensor(arr, dtype=ref.dtype, device=ref.device) if isinstance(ref, Tensor) else arr


def _rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """[3, 3] rotation -> quaternion wxyz (numerically stable branch choice)."""
    m = R
    tr = np.trace(m)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = np.zeros(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of wxyz quaternions, a [4] with b [..., 4]."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], axis=-1)  # fmt: skip


@dataclass
class Normalization:
    """x_norm = scale * R @ x_orig + t, stored as `transform` [4, 4] (float64)."""

    transform: np.ndarray  # [4, 4] similarity, original -> normalized
    scale: float
    mode: str = "none"

    @property
    def rotation(self) -> np.ndarray:  # [3, 3]
        return self.transform[:3, :3] / self.scale

    @property
    def translation(self) -> np.ndarray:  # [3]
        return self.transform[:3, 3]

    @property
    def inverse_transform(self) -> np.ndarray:  # [4, 4] normalized -> original
        return np.linalg.inv(self.transform)

    @staticmethod
    def identity() -> "Normalization":
        return Normalization(np.eye(4), 1.0, "none")

    @staticmethod
    def from_scene(centers: np.ndarray, points: np.ndarray | None, mode: NormalizeMode = "cameras") -> "Normalization":
        """Center and scale from camera centers [N, 3] or from points [P, 3].

        "cameras": center on the mean camera position, scale so the farthest
        camera is at distance 1 (the usual choice for captures around an
        object). "points": center on the median point, scale so 95% of the
        points lie within distance 1 (robust to far outliers). "none": identity.
        """
        if mode == "none":
            return Normalization.identity()
        if mode == "points" and points is not None and len(points) >= 4:
            center = np.median(points, axis=0)
            radius = float(np.percentile(np.linalg.norm(points - center, axis=1), 95))
        elif mode in ("cameras", "points"):
            center = centers.mean(axis=0)
            radius = float(np.linalg.norm(centers - center, axis=1).max()) if len(centers) > 1 else 1.0
        else:
            raise ValueError(f"unknown normalization mode {mode!r}")
        scale = 1.0 / radius if radius > 1e-12 else 1.0
        T = np.eye(4)
        T[:3, :3] *= scale
        T[:3, 3] = -scale * center
        return Normalization(T, scale, mode)

    # points -----------------------------------------------------------------
    def apply_points(self, x):
        """Original -> normalized, points [..., 3] (numpy or torch)."""
        a = _np(x).astype(np.float64)
        return _like(a @ self.transform[:3, :3].T + self.translation, x)

    def to_original_points(self, x):
        """Normalized -> original, points [..., 3]."""
        a = _np(x).astype(np.float64)
        return _like((a - self.translation) @ self.rotation / self.scale, x)

    # cameras ----------------------------------------------------------------
    def apply_viewmats(self, viewmats):
        """Original -> normalized world-to-camera [N, 4, 4]; stays rigid, depth *= scale."""
        V = _np(viewmats).astype(np.float64)
        R = self.rotation
        out = V.copy()
        out[..., :3, :3] = V[..., :3, :3] @ R.T
        out[..., :3, 3] = self.scale * V[..., :3, 3] - (out[..., :3, :3] @ self.translation)
        return _like(out, viewmats)

    def to_original_viewmats(self, viewmats):
        """Normalized -> original world-to-camera [N, 4, 4]."""
        V = _np(viewmats).astype(np.float64)
        out = V.copy()
        out[..., :3, :3] = V[..., :3, :3] @ self.rotation
        out[..., :3, 3] = (V[..., :3, 3] + V[..., :3, :3] @ self.translation) / self.scale
        return _like(out, viewmats)

    # Gaussians --------------------------------------------------------------
    def to_original_gaussians(self, means, quats=None, scales=None):
        """Map Gaussians trained in the normalized frame back to the original one.

        means [N, 3]; quats [N, 4] wxyz; scales [N, 3] linear (not log).
        Returns (means, quats, scales) with None passed through.
        """
        m = self.to_original_points(means)
        q = s = None
        if quats is not None:
            q_inv = _rotmat_to_quat(self.rotation.T)  # rotate by R^T
            q = _like(_quat_mul(q_inv, _np(quats).astype(np.float64)), quats)
        if scales is not None:
            s = scales / self.scale
        return m, q, s

    def to_dict(self) -> dict:
        return {"transform": self.transform.tolist(), "scale": self.scale, "mode": self.mode}

    @staticmethod
    def from_dict(d: dict) -> "Normalization":
        return Normalization(np.asarray(d["transform"], dtype=np.float64), float(d["scale"]), d.get("mode", "none"))
