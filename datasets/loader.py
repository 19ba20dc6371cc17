"""`load(path)`: detect a scene folder's format and load it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from splat.errors import SplatError

from .normalize import NormalizeMode
from .scene import RawScene, SceneData, build_scene

Format = Literal["auto", "colmap", "blender", "nerfstudio", "llff", "video", "frames", "colmap_frames"]
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def detect_format(root: Path) -> str:
    """The layout of `root`, or a SplatError that lists what was looked for."""
    from .colmap import find_sparse_dir

    if not root.exists():
        raise SplatError(f"{root}: scene folder does not exist")
    if not root.is_dir():
        raise SplatError(f"{root}: not a folder (give the scene folder, not a file)")
    if any((root / f"transforms_{s}.json").is_file() for s in ("train", "val", "test")):
        return "blender"
    if (root / "transforms.json").is_file():
        return "nerfstudio"
    if (root / "frame000000").is_dir():
        return "colmap_frames"
    if find_sparse_dir(root) is not None:
        return "colmap"
    videos = [p for p in root.iterdir() if p.suffix.lower() in VIDEO_EXTS]
    if videos:
        return "video"
    if (root / "poses_bounds.npy").is_file():
        if (root / "cam00").is_dir():
            return "frames"
        return "llff"
    if (root / "cam00").is_dir():
        return "frames"
    if not any(root.iterdir()):
        raise SplatError(f"{root}: the scene folder is empty")
    raise SplatError(
        f"{root}: unknown scene layout (expected COLMAP sparse/0 + images/, transforms_train.json, "
        "transforms.json, poses_bounds.npy + images/, cam00.mp4 ... or frame000000/)"
    )


def read_raw(root: Path, fmt: str, images_dir: str | None = None, masks_dir: str | None = None) -> RawScene:
    if fmt == "colmap":
        from .colmap import read_colmap

        return read_colmap(root, images_dir or "images", masks_dir)
    if fmt == "blender":
        from .blender import read_blender

        return read_blender(root)
    if fmt == "nerfstudio":
        from .nerfstudio import read_nerfstudio

        return read_nerfstudio(root)
    if fmt == "llff":
        from .llff import read_llff

        return read_llff(root, images_dir or "images")
    raise SplatError(f"{root}: format '{fmt}' is not a static scene format")


def load(
    path: str | os.PathLike,
    *,
    format: Format = "auto",
    data_factor: int = 1,
    normalize: NormalizeMode = "cameras",
    test_every: int = 8,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    images_dir: str | None = None,
    masks_dir: str | None = None,
    random_init_points: int = 100_000,
    voxel_size: float | None = None,
    outlier_neighbors: int = 0,
    check_images: bool = True,
    seed: int = 0,
):
    """Load a scene folder; the format is detected unless `format` is given.

    Static formats (colmap, blender, nerfstudio/instant-ngp, llff) give a
    `SceneData`; multi-view video layouts (video, frames, colmap_frames) give
    a `VideoScene` (use `load_video` for a typed call).

    data_factor: downscale images by this integer (resized copies are cached).
    normalize: "cameras" | "points" | "none", see `Normalization.from_scene`.
    test_every: hold-out rule when the dataset has no split of its own.
    background: RGB the alpha of RGBA images is composited on.
    images_dir / masks_dir: sub-folders for images and masks (masks are
    ``<masks_dir>/<image name>.png``, nonzero = valid).
    random_init_points: how many random points when there are no SfM points.
    voxel_size / outlier_neighbors: Open3D clean-up of the initial cloud.
    check_images: read every image header now to catch missing, unreadable
    or wrongly sized images up front (cheap; no pixels are decoded).
    """
    root = Path(path).expanduser()
    fmt = detect_format(root) if format == "auto" else format
    if fmt in ("video", "frames", "colmap_frames"):
        from .video import load_video

        return load_video(root, format=fmt, data_factor=data_factor, normalize=normalize)
    raw = read_raw(root, fmt, images_dir, masks_dir)
    return build_scene(
        raw, data_factor=data_factor, normalize=normalize, test_every=test_every, background=background,
        random_init_points=random_init_points, voxel_size=voxel_size, outlier_neighbors=outlier_neighbors,
        check_images=check_images, seed=seed,
    )  # fmt: skip
