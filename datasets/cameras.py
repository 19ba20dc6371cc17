"""Cameras in splat's one internal convention, and conversions into it.

Convention (the one `splat.rasterizer.rasterize` takes):

* ``viewmats`` [N, 4, 4]: world-to-camera, OpenCV axes (x right, y down,
  z forward, the camera looks down +z).
* ``Ks`` [N, 3, 3]: pinhole intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
  in pixels, with the continuous image plane's origin at the top-left corner
  of the top-left pixel, so pixel (row i, column j) has its center at
  (j + 0.5, i + 0.5). This is COLMAP's convention; Blender's cx = W / 2 is too.
* Distorted cameras are undistorted to pinhole at load time, so every
  camera a trainer sees is a plain pinhole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from splat.errors import SplatError

# Models we can undistort to pinhole with pycolmap; fisheye ones need a
# different projection in the rasterizer, so they are refused for now.
PINHOLE_MODELS = {"SIMPLE_PINHOLE", "PINHOLE"}
DISTORTED_MODELS = {"SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}
FISHEYE_MODELS = {
    "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "OPENCV_FISHEYE", "FOV",
    "THIN_PRISM_FISHEYE", "RAD_TAN_THIN_PRISM_FISHEYE", "EQUIRECTANGULAR",
}  # fmt: skip


@dataclass(frozen=True)
class Intrinsics:
    """One camera's intrinsics in COLMAP's model vocabulary (params in COLMAP order)."""

    model: str
    width: int
    height: int
    params: tuple[float, ...]

    def check(self, where: str) -> None:
        if self.model in FISHEYE_MODELS:
            raise SplatError(
                f"{where}: camera model {self.model} is a fisheye model, which splat does not "
                "support yet; undistort the images first (e.g. `colmap image_undistorter`)"
            )
        if self.model not in PINHOLE_MODELS | DISTORTED_MODELS:
            raise SplatError(f"{where}: unsupported camera model {self.model}")
        if self.width <= 0 or self.height <= 0:
            raise SplatError(f"{where}: invalid image size {self.width}x{self.height}")
        if not np.all(np.isfinite(self.params)):
            raise SplatError(f"{where}: camera parameters are not finite: {self.params}")

    @property
    def is_distorted(self) -> bool:
        if self.model in PINHOLE_MODELS:
            return False
        extra = {"SIMPLE_RADIAL": self.params[3:], "RADIAL": self.params[3:]}.get(self.model, self.params[4:])
        return any(abs(p) > 0 for p in extra)

    def K(self) -> np.ndarray:
        """Pinhole matrix [3, 3] (the distortion terms are ignored)."""
        p = self.params
        if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
            fx = fy = p[0]
            cx, cy = p[1], p[2]
        else:
            fx, fy, cx, cy = p[:4]
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)

    @staticmethod
    def pinhole(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> "Intrinsics":
        return Intrinsics("PINHOLE", int(width), int(height), (float(fx), float(fy), float(cx), float(cy)))

    def to_pycolmap(self):
        import pycolmap

        cam = pycolmap.Camera.create_from_model_name(1, self.model, 1.0, self.width, self.height)
        cam.params = list(self.params)
        return cam


def opengl_to_opencv_c2w(c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world [..., 4, 4] OpenGL (y up, looks down -z) -> OpenCV (y down, +z)."""
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[..., :3, 1:3] *= -1  # flip the camera's y and z axes
    return out


def invert_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms [..., 4, 4] (exact, no general matrix inverse)."""
    R, t = m[..., :3, :3], m[..., :3, 3]
    out = np.zeros_like(m)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ t[..., None])[..., 0]
    out[..., 3, 3] = 1
    return out


def check_poses(viewmats: np.ndarray, names: Sequence[str], source: str) -> None:
    """Refuse NaN/infinite or degenerate poses, naming the first bad image."""
    for i, m in enumerate(viewmats):
        if not np.all(np.isfinite(m)):
            raise SplatError(f"{source}: pose of image '{names[i]}' contains NaN or infinite values")
        det = np.linalg.det(m[:3, :3])
        if not 0.9 < det < 1.1:
            raise SplatError(f"{source}: pose of image '{names[i]}' is not a rotation (det {det:.3g})")


@dataclass
class Cameras:
    """N pinhole cameras in the internal convention (see module docstring)."""

    viewmats: Tensor  # [N, 4, 4] float32 world-to-camera, OpenCV
    Ks: Tensor  # [N, 3, 3] float32
    widths: Tensor  # [N] int64
    heights: Tensor  # [N] int64
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        """A subset: `cams[train_indices]`, `cams[3:5]`, `cams[torch.tensor([0, 2])]`."""
        if isinstance(idx, int):
            idx = [idx]
        index = torch.as_tensor(idx, dtype=torch.long) if not isinstance(idx, slice) else idx
        names = np.array(self.names, dtype=object)[np.asarray(index) if not isinstance(idx, slice) else idx]
        return Cameras(self.viewmats[index], self.Ks[index], self.widths[index], self.heights[index], list(names))

    @property
    def camtoworlds(self) -> Tensor:  # [N, 4, 4]
        return torch.linalg.inv(self.viewmats)

    @property
    def centers(self) -> Tensor:  # [N, 3] camera positions in world space
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3]
        return -(R.transpose(1, 2) @ t[..., None])[..., 0]

    def to(self, device) -> "Cameras":
        return Cameras(self.viewmats.to(device), self.Ks.to(device), self.widths.to(device),
                       self.heights.to(device), self.names)  # fmt: skip

    def project(self, points: Tensor, i: int) -> tuple[Tensor, Tensor]:
        """Project world points [P, 3] into camera i: pixels [P, 2] and depths [P]."""
        pts = points.to(self.viewmats.dtype)
        cam = pts @ self.viewmats[i, :3, :3].T + self.viewmats[i, :3, 3]
        uv = cam @ self.Ks[i].T
        return uv[:, :2] / uv[:, 2:3], cam[:, 2]
