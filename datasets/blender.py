"""Blender / NeRF-synthetic scenes: ``transforms_{train,val,test}.json`` + RGBA PNGs.

Each file has ``camera_angle_x`` (horizontal field of view) and frames with an
OpenGL camera-to-world ``transform_matrix`` (y up, camera looks down -z);
poses are flipped to OpenCV and inverted. RGBA images are composited on the
scene's background (white by default) when read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from splat.errors import SplatError

from .cameras import Intrinsics, invert_rigid, opengl_to_opencv_c2w
from .images import image_size
from .scene import RawScene

SPLITS = ("train", "val", "test")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SplatError(f"{path}: invalid JSON ({err})") from None
    except OSError as err:
        raise SplatError(f"{path}: cannot read ({err.strerror})") from None


def resolve_image(root: Path, file_path: str) -> Path:
    """NeRF-synthetic paths often omit the extension ('./train/r_0')."""
    p = (root / file_path).resolve() if not Path(file_path).is_absolute() else Path(file_path)
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".exr", ".bmp", ".tif", ".tiff"):
        return p
    for ext in (".png", ".jpg", ".jpeg"):
        if p.with_name(p.name + ext).is_file():
            return p.with_name(p.name + ext)
    return p.with_name(p.name + ".png")


def c2w_matrix(frame: dict, where: str) -> np.ndarray:
    try:
        m = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, ValueError, TypeError):
        raise SplatError(f"{where}: frame has no valid 'transform_matrix'") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0, 0, 0, 1]])
    if m.shape != (4, 4):
        raise SplatError(f"{where}: 'transform_matrix' must be 4x4, got {list(m.shape)}")
    return m


def read_blender(root: Path) -> RawScene:
    names, paths, c2ws, intr = [], [], [], []
    splits: dict[str, list[int]] = {}
    for split in SPLITS:
        jpath = root / f"transforms_{split}.json"
        if not jpath.is_file():
            continue
        meta = read_json(jpath)
        if "camera_angle_x" not in meta:
            raise SplatError(f"{jpath}: missing 'camera_angle_x'")
        fov = float(meta["camera_angle_x"])
        splits[split] = []
        for k, frame in enumerate(meta.get("frames", [])):
            where = f"{jpath} (frame {k})"
            if "file_path" not in frame:
                raise SplatError(f"{where}: frame has no 'file_path'")
            path = resolve_image(root, frame["file_path"])
            w, h = image_size(path)
            f = 0.5 * w / np.tan(0.5 * fov)
            splits[split].append(len(names))
            names.append(str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else path.name)
            paths.append(path)
            c2ws.append(c2w_matrix(frame, where))
            intr.append(Intrinsics.pinhole(f, f, w / 2, h / 2, w, h))
    if not names:
        raise SplatError(f"{root}: the transforms_*.json files list no frames")
    c2w = np.stack(c2ws)
    if not np.all(np.isfinite(c2w)):
        bad = next(i for i in range(len(c2w)) if not np.all(np.isfinite(c2w[i])))
        raise SplatError(f"{root}: pose of image '{names[bad]}' contains NaN or infinite values")
    viewmats = invert_rigid(opengl_to_opencv_c2w(c2w))
    return RawScene(
        root=root, format="blender", names=names, image_paths=paths, viewmats=viewmats, intrinsics=intr,
        splits=splits, source=str(root / "transforms_train.json"),
    )  # fmt: skip
