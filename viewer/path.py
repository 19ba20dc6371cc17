"""Camera paths recorded in the viewer, replayed by `splat render --path FILE`.

File format (JSON, documented in docs/viewer.md):

    {"format": "splat-camera-path", "version": 1,
     "width": 1280, "height": 720,          # output image size in pixels
     "fps": 30.0, "seconds": 4.0,           # frames = max(1, round(fps * seconds))
     "interpolation": "smooth",             # "smooth" | "linear" | "none" (keyframes as they are)
     "loop": false,                         # close the path back to the first keyframe
     "keyframes": [{"viewmat": [[4 x 4]],   # world-to-camera, OpenCV axes, the scene's frame
                    "fov_y": 0.9,           # vertical field of view, radians
                    "time": 0.0}, ...]}     # optional, seconds; default evenly spaced

`load_camera_path(path)` -> (viewmats [T, 4, 4], Ks [T, 3, 3], width, height).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from splat.errors import SplatError
from splat.rotations import matrix_to_quat, quat_to_matrix, slerp
from splat.viewer.camera import fov_to_K

FORMAT = "splat-camera-path"
VERSION = 1


@dataclass
class Keyframe:
    viewmat: np.ndarray  # [4, 4] world-to-camera
    fov_y: float  # radians
    time: float | None = None


@dataclass
class CameraPath:
    keyframes: list[Keyframe] = field(default_factory=list)
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    seconds: float = 4.0
    interpolation: str = "smooth"
    loop: bool = False

    def to_dict(self) -> dict:
        kfs = []
        for k in self.keyframes:
            d = {"viewmat": np.asarray(k.viewmat, dtype=np.float64).round(9).tolist(), "fov_y": float(k.fov_y)}
            if k.time is not None:
                d["time"] = float(k.time)
            kfs.append(d)
        return {"format": FORMAT, "version": VERSION, "width": int(self.width), "height": int(self.height),
                "fps": float(self.fps), "seconds": float(self.seconds), "interpolation": self.interpolation,
                "loop": bool(self.loop), "keyframes": kfs}  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        from splat.atomic import atomic_write

        if not self.keyframes:
            raise SplatError(f"{path}: the camera path has no keyframes")
        data = (json.dumps(self.to_dict(), indent=1) + "\n").encode()
        with atomic_write(path, "wb") as f:
            f.write(data)

    @classmethod
    def from_dict(cls, d: dict, source: str = "camera path") -> CameraPath:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SplatError(f"{source}: not a camera path (expected \"format\": \"{FORMAT}\")")
        if int(d.get("version", 0)) > VERSION:
            raise SplatError(f"{source}: camera path version {d.get('version')} is newer than this splat reads")
        try:
            kfs = [Keyframe(np.asarray(k["viewmat"], dtype=np.float64), float(k["fov_y"]),
                            None if k.get("time") is None else float(k["time"])) for k in d["keyframes"]]  # fmt: skip
            path = cls(kfs, int(d["width"]), int(d["height"]), float(d.get("fps", 30.0)),
                       float(d.get("seconds", 4.0)), str(d.get("interpolation", "smooth")),
                       bool(d.get("loop", False)))  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise SplatError(f"{source}: malformed camera path ({type(err).__name__}: {err})") from None
        if not kfs:
            raise SplatError(f"{source}: the camera path has no keyframes")
        for i, k in enumerate(kfs):
            if k.viewmat.shape != (4, 4) or not np.isfinite(k.viewmat).all():
                raise SplatError(f"{source}: keyframe {i}: viewmat must be a finite 4x4 matrix")
            if not 0.0 < k.fov_y < math.pi:
                raise SplatError(f"{source}: keyframe {i}: fov_y {k.fov_y} is not in (0, pi) radians")
        if path.width <= 0 or path.height <= 0 or path.fps <= 0 or path.seconds < 0:
            raise SplatError(f"{source}: width, height, fps must be positive and seconds >= 0")
        if path.interpolation not in ("smooth", "linear", "none"):
            raise SplatError(f"{source}: interpolation {path.interpolation!r} (expected smooth, linear or none)")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CameraPath:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as err:
            raise SplatError(f"{path}: cannot read camera path ({err.strerror or err})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SplatError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(d, str(path))

    # --- sampling ---------------------------------------------------------------------

    def frames(self) -> tuple[Tensor, Tensor]:
        """Interpolated cameras: viewmats [T, 4, 4] and Ks [T, 3, 3] (float32)."""
        kfs = list(self.keyframes)
        if self.interpolation == "none" or len(kfs) == 1:
            vms = [k.viewmat for k in kfs]
            fovs = [k.fov_y for k in kfs]
        else:
            if self.loop:
                kfs = kfs + [Keyframe(kfs[0].viewmat, kfs[0].fov_y, None)]
            times = _keyframe_times(kfs, self.seconds)
            n = max(1, round(self.fps * self.seconds))
            ts = np.linspace(times[0], times[-1], n, endpoint=not self.loop) if n > 1 else np.array([times[0]])
            vms, fovs = [], []
            for t in ts:
                vm, fov = _interpolate(kfs, times, float(t), self.interpolation == "smooth")
                vms.append(vm)
                fovs.append(fov)
        viewmats = torch.from_numpy(np.stack(vms)).float()
        Ks = torch.stack([fov_to_K(f, self.width, self.height) for f in fovs])
        return viewmats, Ks


def _keyframe_times(kfs: list[Keyframe], seconds: float) -> np.ndarray:
    given = [k.time for k in kfs]
    if all(t is not None for t in given) and np.all(np.diff(given) > 0):
        return np.asarray(given, dtype=np.float64)
    return np.linspace(0.0, max(seconds, 1e-9), len(kfs))


def _interpolate(kfs: list[Keyframe], times: np.ndarray, t: float, smooth: bool) -> tuple[np.ndarray, float]:
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(kfs) - 2))
    u = float(np.clip((t - times[i]) / max(times[i + 1] - times[i], 1e-12), 0.0, 1.0))
    c2w = [np.linalg.inv(k.viewmat) for k in kfs]
    centers = [c[:3, 3] for c in c2w]
    if smooth:  # Catmull-Rom through the centers, ease in/out on the rotations
        p0, p1, p2, p3 = (centers[max(i - 1, 0)], centers[i], centers[i + 1], centers[min(i + 2, len(kfs) - 1)])
        center = 0.5 * (2 * p1 + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2
                        + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3)  # fmt: skip
        ur = u * u * (3 - 2 * u)
    else:
        center = (1 - u) * centers[i] + u * centers[i + 1]
        ur = u
    q = slerp(matrix_to_quat(c2w[i][:3, :3]), matrix_to_quat(c2w[i + 1][:3, :3]), ur)
    pose = np.eye(4)
    pose[:3, :3] = quat_to_matrix(q)
    pose[:3, 3] = center
    fov = (1 - u) * kfs[i].fov_y + u * kfs[i + 1].fov_y
    return np.linalg.inv(pose), fov


def load_camera_path(path: str | os.PathLike) -> tuple[Tensor, Tensor, int, int]:
    """Read a camera path file: (viewmats [T, 4, 4], Ks [T, 3, 3], width, height)."""
    cp = CameraPath.load(path)
    viewmats, Ks = cp.frames()
    return viewmats, Ks, cp.width, cp.height
