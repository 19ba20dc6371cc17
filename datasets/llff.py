"""LLFF scenes: ``poses_bounds.npy`` + ``images/`` (also the camera file of N3DV videos).

Each row of poses_bounds.npy is 17 numbers: a 3x5 matrix, row-major, whose
first three columns are the camera-to-world rotation with axes ordered
(down, right, backwards), then the camera center, then (height, width,
focal); followed by the near and far depth bounds. Principal points are the
image centers. Images may be a downscaled copy of the size in the file
(``images_4/``): the focal length is scaled to the images found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splat.atomic import atomic_write
from splat.errors import SplatError

from .cameras import Intrinsics, invert_rigid
from .images import image_size
from .scene import RawScene

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".JPG", ".PNG", ".JPEG")


def read_poses_bounds(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV camera-to-world [N, 4, 4], hwf [N, 3], bounds [N, 2] from poses_bounds.npy."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise SplatError(f"{path}: cannot read ({err})") from None
    if arr.ndim != 2 or arr.shape[1] != 17:
        raise SplatError(f"{path}: expected an [N, 17] array, got shape {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.where(~np.isfinite(arr).all(1))[0][0])
        raise SplatError(f"{path}: pose {bad} contains NaN or infinite values")
    m = arr[:, :15].reshape(-1, 3, 5).astype(np.float64)
    c2w = np.tile(np.eye(4), (len(arr), 1, 1))
    c2w[:, :3, 0] = m[:, :, 1]  # right
    c2w[:, :3, 1] = m[:, :, 0]  # down
    c2w[:, :3, 2] = -m[:, :, 2]  # forward = -backwards
    c2w[:, :3, 3] = m[:, :, 3]
    return c2w, m[:, :, 4], arr[:, 15:17].astype(np.float64)


def write_poses_bounds(path: Path, c2w: np.ndarray, K: np.ndarray, width: int, height: int,
                       near: float = 0.1, far: float = 100.0) -> None:  # fmt: skip
    """Write OpenCV camera-to-world [N, 4, 4] with one shared K (fx == fy, centered) as LLFF."""
    n = len(c2w)
    m = np.zeros((n, 3, 5))
    m[:, :, 0] = c2w[:, :3, 1]
    m[:, :, 1] = c2w[:, :3, 0]
    m[:, :, 2] = -c2w[:, :3, 2]
    m[:, :, 3] = c2w[:, :3, 3]
    m[:, :, 4] = [height, width, K[0, 0]]
    arr = np.concatenate([m.reshape(n, 15), np.tile([near, far], (n, 1))], 1)
    with atomic_write(path, "wb") as f:
        np.save(f, arr)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in IMAGE_EXTS and not p.name.startswith("."))


def read_llff(root: Path, images_dir: str = "images") -> RawScene:
    pb = root / "poses_bounds.npy"
    c2w, hwf, bounds = read_poses_bounds(pb)
    folder = root / images_dir
    if not folder.is_dir():
        raise SplatError(f"{folder}: the LLFF scene has no image folder")
    paths = list_images(folder)
    if len(paths) != len(c2w):
        raise SplatError(f"{pb}: has {len(c2w)} poses but {folder} has {len(paths)} images")
    intr = []
    for p, (h, w, f) in zip(paths, hwf):
        iw, ih = image_size(p)
        s = iw / w  # images may be a downscaled copy of the size in the file
        if abs(ih / h - s) > 0.02:
            raise SplatError(f"{p}: image is {iw}x{ih} but {pb} says {int(w)}x{int(h)} (not a uniform scale)")
        intr.append(Intrinsics.pinhole(f * s, f * s, iw / 2, ih / 2, iw, ih))
    names = [p.name for p in paths]
    return RawScene(
        root=root, format="llff", names=names, image_paths=paths, viewmats=invert_rigid(c2w), intrinsics=intr,
        source=str(pb), metadata={"bounds": bounds.tolist()},
    )  # fmt: skip
