"""Lazy per-view image access: read, undistort, downscale, cache.

Nothing is decoded at load time except image headers (to check sizes), so a
2,000-image capture costs no RAM until a view is asked for. Processed images
(undistorted to pinhole and/or downscaled by ``data_factor``) are written once
to the scene's cache folder (see `cache.py`) and read from there afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from splat.errors import SplatError

from .cache import file_key, write_png
from .cameras import Intrinsics


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    if not path.is_file():
        raise SplatError(f"{path}: image file is missing")
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as err:  # PIL raises many types for corrupt files
        raise SplatError(f"{path}: unreadable image ({err})") from None


def read_image(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] or [H, W, 4]; greyscale is expanded to RGB."""
    if not path.is_file():
        raise SplatError(f"{path}: image file is missing")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            arr = np.asarray(im)
    except SplatError:
        raise
    except Exception as err:
        raise SplatError(f"{path}: unreadable image ({err})") from None
    if arr.dtype != np.uint8:
        raise SplatError(f"{path}: unsupported pixel type {arr.dtype} (expected 8-bit)")
    return arr


def read_mask(path: Path) -> np.ndarray:
    """bool [H, W]: True where the pixel is valid (mask value > 0)."""
    arr = read_image(path)
    return arr[..., 0] > 0 if arr.shape[-1] == 3 else (arr[..., 0] > 0) & (arr[..., 3] > 0)


def resize(arr: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize uint8 [H, W(, C)] to size (w, h); area filter for images, nearest for masks."""
    if (arr.shape[1], arr.shape[0]) == tuple(size):
        return arr
    filt = Image.Resampling.NEAREST if nearest else Image.Resampling.BOX
    return np.asarray(Image.fromarray(arr).resize(size, filt))


def undistort(arr: np.ndarray, camera: Intrinsics) -> np.ndarray:
    """Undistort uint8 [H, W, C] to the pinhole camera `undistorted_camera(camera)`."""
    import pycolmap

    cam = camera.to_pycolmap()
    opts = pycolmap.UndistortCameraOptions()
    channels = [arr[..., :3]] + ([np.repeat(arr[..., 3:], 3, axis=-1)] if arr.shape[-1] == 4 else [])
    out = []
    for ch in channels:
        bmp, _ = pycolmap.undistort_image(opts, pycolmap.Bitmap.from_array(np.ascontiguousarray(ch)), cam)
        out.append(bmp.to_array())
    return out[0] if len(out) == 1 else np.concatenate([out[0], out[1][..., :1]], axis=-1)


def undistorted_camera(camera: Intrinsics) -> Intrinsics:
    """The pinhole camera COLMAP's undistorter maps `camera` to (size may change)."""
    import pycolmap

    new = pycolmap.undistort_camera(pycolmap.UndistortCameraOptions(), camera.to_pycolmap())
    K = new.calibration_matrix()
    return Intrinsics.pinhole(K[0, 0], K[1, 1], K[0, 2], K[1, 2], new.width, new.height)


@dataclass(frozen=True)
class ViewSource:
    """How to produce one view's pixels from the user's file (picklable for workers)."""

    path: Path  # the user's image file
    src_size: tuple[int, int]  # (w, h) it must have on disk
    out_size: tuple[int, int]  # (w, h) after undistortion and downscaling
    distorted: Intrinsics | None = None  # undistort with this camera first, if set
    mask_path: Path | None = None

    @property
    def needs_processing(self) -> bool:
        return self.distorted is not None or self.out_size != self.src_size


class ImageStore:
    """Produces processed uint8 images for views on demand, caching derived files."""

    def __init__(self, sources: list[ViewSource], cache_dir: Path | None):
        self.sources = sources
        self.cache_dir = cache_dir

    def __len__(self) -> int:
        return len(self.sources)

    def _cached(self, src: ViewSource, path: Path, kind: str, make) -> np.ndarray:
        key = file_key(path, kind, src.out_size, src.distorted)
        assert self.cache_dir is not None
        cached = self.cache_dir / f"{path.stem}-{kind}-{key}.png"
        if cached.is_file():
            try:
                return np.asarray(Image.open(cached))
            except Exception:
                pass  # a damaged cache file is simply rebuilt
        arr = make()
        write_png(cached, arr)
        return arr

    def rgb(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3 or 4] for view i at its final size."""
        src = self.sources[i]

        def make() -> np.ndarray:
            arr = read_image(src.path)
            if (arr.shape[1], arr.shape[0]) != src.src_size:
                raise SplatError(
                    f"{src.path}: image is {arr.shape[1]}x{arr.shape[0]} but its camera says "
                    f"{src.src_size[0]}x{src.src_size[1]}"
                )
            if src.distorted is not None:
                arr = undistort(arr, src.distorted)
            return resize(arr, src.out_size)

        if not src.needs_processing:
            return make()
        return self._cached(src, src.path, "rgb", make)

    def mask(self, i: int) -> np.ndarray | None:
        """bool [H, W] validity mask for view i, or None when the view has none."""
        src = self.sources[i]
        if src.mask_path is None:
            return None

        def make() -> np.ndarray:
            m = read_mask(src.mask_path).astype(np.uint8) * 255
            if src.distorted is not None:
                m = undistort(np.repeat(m[..., None], 3, -1), src.distorted)[..., 0]
            return resize(m, src.out_size, nearest=True)

        if not src.needs_processing:
            return make() > 127
        return self._cached(src, src.mask_path, "mask", make) > 127
