"""Camera conventions: viser's camera state <-> our world-to-camera viewmat and K.

viser (1.1) reports, per client, `wxyz` and `position` with `P_world = R(wxyz) p_cam +
position`: a **camera-to-world** pose whose camera axes are OpenCV's (x right, y down,
z = look direction), `fov` = **vertical** field of view in radians, and the canvas
size `image_width` x `image_height`. Our rasterizer takes the inverse (world-to-camera)
with the same axes, and a pinhole K. So the conversion is an inversion plus
`fy = (H / 2) / tan(fov / 2)`, `fx = fy` (square pixels), principal point at the
canvas center.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from splat.rotations import matrix_to_quat, quat_to_matrix  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class CameraState:
    """One client's camera, in viser's terms (camera-to-world pose, OpenCV axes)."""

    wxyz: tuple[float, float, float, float]  # R_world_camera
    position: tuple[float, float, float]  # camera center in world coordinates
    fov: float  # vertical field of view, radians
    width: int  # canvas size in pixels
    height: int

    @classmethod
    def from_handle(cls, camera) -> CameraState:
        """Snapshot a `viser.CameraHandle` (reads its fields once, thread-safe enough)."""
        st = camera._state  # one consistent record: viser replaces it atomically per message
        return cls(tuple(map(float, st.wxyz)), tuple(map(float, st.position)), float(st.fov),
                   int(st.image_width), int(st.image_height))  # fmt: skip

    @classmethod
    def from_viewmat(cls, viewmat, K, width: int, height: int) -> CameraState:
        """The viser state showing what (viewmat, K) shows (square pixels, centered K assumed)."""
        wxyz, position = viewmat_to_viser(viewmat)
        fy = float(K[1][1])
        return cls(tuple(wxyz), tuple(position), 2.0 * math.atan(0.5 * height / fy), int(width), int(height))

    def camtoworld(self) -> np.ndarray:
        c2w = np.eye(4)
        c2w[:3, :3] = quat_to_matrix(self.wxyz)
        c2w[:3, 3] = self.position
        return c2w

    def viewmat(self) -> Tensor:
        """[4, 4] float32 world-to-camera, OpenCV axes."""
        return viser_to_viewmat(self.wxyz, self.position)

    def K(self, width: int | None = None, height: int | None = None) -> Tensor:
        """[3, 3] pinhole intrinsics for a render of `width` x `height` (default: the canvas)."""
        return fov_to_K(self.fov, width or self.width, height or self.height)

    def scaled_size(self, scale: float, max_side: int | None = None) -> tuple[int, int]:
        """Render size for a resolution scale, same aspect as the canvas."""
        s = scale
        if max_side:
            s = min(s, max_side / max(self.width, self.height))
        return max(1, round(self.width * s)), max(1, round(self.height * s))


def viser_to_viewmat(wxyz, position) -> Tensor:
    """viser camera (R_world_camera as wxyz, camera position) -> world-to-camera [4, 4]."""
    R = quat_to_matrix(wxyz)
    t = np.asarray(position, dtype=np.float64)
    vm = np.eye(4)
    vm[:3, :3] = R.T
    vm[:3, 3] = -R.T @ t
    return torch.from_numpy(vm).float()


def viewmat_to_viser(viewmat) -> tuple[np.ndarray, np.ndarray]:
    """world-to-camera [4, 4] -> (wxyz, position) as viser's camera / frustum nodes take them."""
    vm = np.asarray(viewmat.detach().cpu() if isinstance(viewmat, Tensor) else viewmat, dtype=np.float64)
    R = vm[:3, :3].T
    return matrix_to_quat(R), -R @ vm[:3, 3]


def fov_to_K(fov_y: float, width: int, height: int) -> Tensor:
    """Pinhole K for a vertical field of view; square pixels, principal point at the center."""
    fy = 0.5 * height / math.tan(0.5 * fov_y)
    return torch.tensor([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]])


def K_to_fov(K, height: int) -> float:
    """Vertical field of view (radians) of a pinhole K for an image `height` pixels tall."""
    return 2.0 * math.atan(0.5 * height / float(K[1][1]))
