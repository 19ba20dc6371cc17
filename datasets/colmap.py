"""COLMAP scenes: ``<root>/sparse/0`` (binary or text, read with pycolmap) + ``<root>/images``.

COLMAP already uses splat's convention (world-to-camera, OpenCV axes, pixel
centers at +0.5), so poses pass through untouched. Distorted models
(SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV) are undistorted to pinhole
lazily, per image, into the cache; fisheye models are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splat.errors import SplatError

from .cameras import Intrinsics
from .scene import RawScene

MODEL_FILES = ("cameras", "images", "points3D")


def find_sparse_dir(root: Path) -> Path | None:
    """The model folder: sparse/0, sparse, or root itself, in binary or text form."""
    for cand in (root / "sparse" / "0", root / "sparse", root):
        if all((cand / f"{f}.bin").is_file() for f in MODEL_FILES) or all(
            (cand / f"{f}.txt").is_file() for f in MODEL_FILES
        ):
            return cand
    return None


def read_model(sparse: Path):
    """pycolmap.Reconstruction, with pycolmap's failures turned into a SplatError."""
    import pycolmap

    try:
        return pycolmap.Reconstruction(str(sparse))
    except Exception as err:
        raise SplatError(f"{sparse}: cannot read the COLMAP model ({str(err).strip().splitlines()[-1]})") from None


def _check_duplicates_txt(sparse: Path) -> None:
    """pycolmap silently keeps one of two same-named images in images.txt; catch that first."""
    txt = sparse / "images.txt"
    if not txt.is_file():
        return
    seen: set[str] = set()
    lines = [ln for ln in txt.read_text().splitlines() if not ln.startswith("#")]
    for ln in lines[::2]:  # every image takes two lines: pose, then its 2D points
        name = ln.split(maxsplit=9)[-1].strip() if len(ln.split()) >= 10 else None
        if name in seen:
            raise SplatError(f"{txt}: duplicate image name '{name}'")
        if name:
            seen.add(name)


def check_tracks(rec, sparse: Path) -> None:
    """Every point's track must point at a registered image's 2D point that points back."""
    images = rec.images
    for pid, pt in rec.points3D.items():
        for el in pt.track.elements:
            img = images.get(el.image_id) if hasattr(images, "get") else (images[el.image_id] if el.image_id in images else None)
            if img is None:
                raise SplatError(f"{sparse}: 3D point {pid} is observed by image id {el.image_id}, which is not in the model")
            if el.point2D_idx >= img.num_points2D():
                raise SplatError(
                    f"{sparse}: 3D point {pid} refers to 2D point {el.point2D_idx} of image '{img.name}', "
                    f"which has only {img.num_points2D()}"
                )
            if img.points2D[el.point2D_idx].point3D_id != pid:
                raise SplatError(
                    f"{sparse}: 3D point {pid}'s track disagrees with image '{img.name}' (2D point {el.point2D_idx})"
                )
    # the other direction: every 2D point that names a 3D point is in that point's track
    points = rec.points3D
    for img in images.values():
        for idx, p2 in enumerate(img.points2D):
            if not p2.has_point3D():
                continue
            pid = p2.point3D_id
            if pid not in points or not any(
                e.image_id == img.image_id and e.point2D_idx == idx for e in points[pid].track.elements
            ):
                raise SplatError(
                    f"{sparse}: image '{img.name}' links its 2D point {idx} to 3D point {pid}, "
                    "whose track does not list it"
                )


def read_colmap(root: Path, images_dir: str = "images", masks_dir: str | None = None, check: bool = True) -> RawScene:
    sparse = find_sparse_dir(root)
    if sparse is None:
        raise SplatError(f"{root}: no COLMAP model (cameras/images/points3D .bin or .txt) under sparse/0")
    _check_duplicates_txt(sparse)
    rec = read_model(sparse)
    img_root = root / images_dir
    if not img_root.is_dir():
        raise SplatError(f"{img_root}: the COLMAP scene has no image folder")
    images = sorted((im for im in rec.images.values() if im.has_pose), key=lambda im: im.name)
    names = [im.name for im in images]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SplatError(f"{sparse}: duplicate image name '{dup}'")
    if check:
        check_tracks(rec, sparse)

    viewmats = np.zeros((len(images), 4, 4))
    intr = []
    for i, im in enumerate(images):
        cfw = im.cam_from_world  # a method in pycolmap 4, a property before
        viewmats[i, :3] = (cfw() if callable(cfw) else cfw).matrix()  # [3, 4]
        viewmats[i, 3, 3] = 1
        cam = rec.cameras[im.camera_id]
        intr.append(Intrinsics(cam.model.name, int(cam.width), int(cam.height), tuple(float(p) for p in cam.params)))

    pts = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)  # [P, 3]
    rgb = np.array([p.color for p in pts], dtype=np.float64).reshape(-1, 3) / 255.0  # [P, 3]
    masks = None
    if masks_dir is not None:
        masks = [root / masks_dir / f"{n}.png" for n in names]
    return RawScene(
        root=root, format="colmap", names=names, image_paths=[img_root / n for n in names], viewmats=viewmats,
        intrinsics=intr, points=xyz, point_colors=rgb, mask_paths=masks, source=str(sparse),
    )  # fmt: skip
