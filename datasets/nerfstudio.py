"""nerfstudio and instant-ngp scenes: one ``transforms.json``.

Shared intrinsics at the top level (``fl_x fl_y cx cy w h``, distortion
``k1 k2 k3 p1 p2``, or instant-ngp's ``camera_angle_x``) can be overridden
per frame. Poses are OpenGL camera-to-world, as in Blender. Distorted cameras
become OPENCV / FULL_OPENCV models, undistorted to pinhole on load; fisheye
models are refused. Frames whose image is missing are skipped with one
warning that counts them; ``aabb_scale`` is kept in the metadata.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from splat.errors import SplatError

from .blender import c2w_matrix, read_json, resolve_image
from .cameras import Intrinsics, invert_rigid, opengl_to_opencv_c2w
from .images import image_size
from .scene import RawScene

KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "camera_angle_x",
        "camera_angle_y", "camera_model")  # fmt: skip


def _intrinsics(c: dict, path: Path, where: str) -> Intrinsics:
    model = str(c.get("camera_model", "OPENCV")).upper()
    if "FISHEYE" in model or model == "EQUIRECTANGULAR":
        raise SplatError(f"{where}: camera model {model} is not supported yet (fisheye/equirectangular)")
    if "w" in c and "h" in c:
        w, h = int(c["w"]), int(c["h"])
    else:
        w, h = image_size(path)
    if "fl_x" in c:
        fx = float(c["fl_x"])
    elif "camera_angle_x" in c:
        fx = 0.5 * w / math.tan(0.5 * float(c["camera_angle_x"]))
    else:
        raise SplatError(f"{where}: no focal length ('fl_x' or 'camera_angle_x')")
    if "fl_y" in c:
        fy = float(c["fl_y"])
    elif "camera_angle_y" in c:
        fy = 0.5 * h / math.tan(0.5 * float(c["camera_angle_y"]))
    else:
        fy = fx
    cx, cy = float(c.get("cx", w / 2)), float(c.get("cy", h / 2))
    k1, k2, k3 = (float(c.get(k, 0.0)) for k in ("k1", "k2", "k3"))
    p1, p2 = float(c.get("p1", 0.0)), float(c.get("p2", 0.0))
    if k3:
        return Intrinsics("FULL_OPENCV", w, h, (fx, fy, cx, cy, k1, k2, p1, p2, k3, 0.0, 0.0, 0.0))
    if k1 or k2 or p1 or p2:
        return Intrinsics("OPENCV", w, h, (fx, fy, cx, cy, k1, k2, p1, p2))
    return Intrinsics.pinhole(fx, fy, cx, cy, w, h)


def read_nerfstudio(root: Path) -> RawScene:
    jpath = root / "transforms.json"
    meta = read_json(jpath)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SplatError(f"{jpath}: no 'frames' listed")
    shared = {k: meta[k] for k in KEYS if k in meta}
    names, paths, c2ws, intr, masks = [], [], [], [], []
    missing = 0
    for k, fr in enumerate(frames):
        where = f"{jpath} (frame {k})"
        if "file_path" not in fr:
            raise SplatError(f"{where}: frame has no 'file_path'")
        path = resolve_image(root, fr["file_path"])
        if not path.is_file():
            missing += 1
            continue
        cam = dict(shared, **{key: fr[key] for key in KEYS if key in fr})
        names.append(str(fr["file_path"]).removeprefix("./"))
        paths.append(path)
        c2ws.append(c2w_matrix(fr, where))
        intr.append(_intrinsics(cam, path, where))
        masks.append(root / fr["mask_path"] if "mask_path" in fr else None)
    if missing:
        warnings.warn(f"{jpath}: skipped {missing} of {len(frames)} frames whose image file is missing", stacklevel=3)
    if not names:
        raise SplatError(f"{jpath}: none of the {len(frames)} frames' images exist")
    c2w = np.stack(c2ws)
    for i in range(len(c2w)):
        if not np.all(np.isfinite(c2w[i])):
            raise SplatError(f"{jpath}: pose of image '{names[i]}' contains NaN or infinite values")
    viewmats = invert_rigid(opengl_to_opencv_c2w(c2w))
    metadata = {k: meta[k] for k in ("aabb_scale", "scale", "offset") if k in meta}
    points = colors = None
    ply = meta.get("ply_file_path")
    if ply and (root / ply).is_file():
        import open3d as o3d

        # nerfstudio's ply is in the dataset's (OpenGL-convention) world frame, like the poses
        pcd = o3d.io.read_point_cloud(str(root / ply))
        points, colors = np.asarray(pcd.points), np.asarray(pcd.colors) if pcd.has_colors() else None
    return RawScene(
        root=root, format="nerfstudio", names=names, image_paths=paths, viewmats=viewmats, intrinsics=intr,
        points=points, point_colors=colors, mask_paths=masks if any(m is not None for m in masks) else None,
        source=str(jpath), metadata=metadata,
    )  # fmt: skip
