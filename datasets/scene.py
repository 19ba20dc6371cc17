"""`SceneData`: what every loader produces, and the shared steps that build it.

Format readers (colmap.py, blender.py, ...) only parse their files into a
`RawScene` (numpy, original frame, possibly distorted cameras). `build_scene`
then does everything common to all formats: validation, undistortion and
downscale planning, normalization, the train/test split and initial points.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from splat.errors import SplatError

from .cache import scene_cache_dir
from .cameras import Cameras, Intrinsics, check_poses
from .images import ImageStore, ViewSource, image_size, undistorted_camera
from .normalize import Normalization, NormalizeMode
from .points import filter_points, random_points


@dataclass
class RawScene:
    """A parsed capture before the common processing (original frame, numpy)."""

    root: Path
    format: str
    names: list[str]  # [N] unique image names
    image_paths: list[Path]  # [N]
    viewmats: np.ndarray  # [N, 4, 4] world-to-camera, OpenCV, original frame
    intrinsics: list[Intrinsics]  # [N] possibly distorted
    points: np.ndarray | None = None  # [P, 3]
    point_colors: np.ndarray | None = None  # [P, 3] in [0, 1]
    splits: dict[str, list[int]] | None = None  # the dataset's own split, if any
    mask_paths: list[Path | None] | None = None
    source: str = ""  # file the poses came from, for error messages
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class View:
    """One training sample: an image with the camera that saw it."""

    index: int
    image: Tensor  # [H, W, 3] float32 in [0, 1], composited on the background
    viewmat: Tensor  # [4, 4] world-to-camera, OpenCV
    K: Tensor  # [3, 3]
    alpha: Tensor | None = None  # [H, W, 1] float32 when the source has alpha
    mask: Tensor | None = None  # [H, W] bool, True = valid pixel


@dataclass
class SceneData:
    """A loaded static scene. All poses are in the normalized frame.

    cameras: every view (train, val and test), see `Cameras`.
    train_indices / val_indices / test_indices: indices into `cameras`.
    points / point_colors: the initial cloud [P, 3], colors [P, 3] in [0, 1].
    normalization: maps the normalized frame back to the user's (`to_original_*`).
    """

    root: Path
    format: str
    cameras: Cameras
    train_indices: list[int]
    test_indices: list[int]
    val_indices: list[int]
    points: Tensor  # [P, 3] float32, normalized frame
    point_colors: Tensor  # [P, 3] float32 in [0, 1]
    points_are_sfm: bool
    normalization: Normalization
    background: tuple[float, float, float]
    store: ImageStore
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cameras)

    def __repr__(self) -> str:
        return (f"SceneData({self.format}, {self.root}, {len(self)} views: {len(self.train_indices)} train, "
                f"{len(self.test_indices)} test, {len(self.points)} points)")  # fmt: skip

    @property
    def names(self) -> list[str]:
        return self.cameras.names

    def index_of(self, name: str) -> int:
        return self.cameras.names.index(name)

    def image(self, i: int) -> Tensor:
        """View i as float32 [H, W, 3] in [0, 1]; alpha composited on `background`."""
        return self.view(i, with_mask=False).image

    def alpha(self, i: int) -> Tensor | None:
        """View i's alpha [H, W, 1] float32, or None for opaque images."""
        arr = self.store.rgb(i)
        return torch.tensor(arr[..., 3:], dtype=torch.float32) / 255.0 if arr.shape[-1] == 4 else None

    def mask(self, i: int) -> Tensor | None:
        """View i's validity mask [H, W] bool, or None."""
        m = self.store.mask(i)
        return None if m is None else torch.tensor(m)

    def view(self, i: int, with_mask: bool = True) -> View:
        """Image, camera, alpha and mask of view i, decoded once."""
        arr = self.store.rgb(i)
        img = torch.tensor(arr, dtype=torch.float32) / 255.0  # copies: the decoded array is read-only
        alpha = None
        if img.shape[-1] == 4:
            alpha = img[..., 3:]
            img = img[..., :3] * alpha + torch.tensor(self.background) * (1 - alpha)
        mask = self.mask(i) if with_mask else None
        return View(i, img, self.cameras.viewmats[i], self.cameras.Ks[i], alpha, mask)

    def split(self, name: Literal["train", "test", "val", "all"] = "train") -> "SplitDataset":
        """A `torch.utils.data.Dataset` over one split (works with DataLoader workers)."""
        idx = {"train": self.train_indices, "test": self.test_indices, "val": self.val_indices,
               "all": list(range(len(self)))}[name]  # fmt: skip
        return SplitDataset(self, idx)


class SplitDataset(torch.utils.data.Dataset):
    """Items are dicts: image [H,W,3], viewmat [4,4], K [3,3], index, (alpha [H,W,1]), (mask [H,W]).

    The default collate stacks them into the batch `rasterize` takes
    (`batch["viewmat"]` is [B, 4, 4], `batch["K"]` [B, 3, 3]) when sizes agree.
    """

    def __init__(self, scene: SceneData, indices: Sequence[int]):
        self.scene = scene
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, Tensor | int]:
        v = self.scene.view(self.indices[k])
        item: dict[str, Tensor | int] = {"image": v.image, "viewmat": v.viewmat, "K": v.K, "index": v.index}
        if v.alpha is not None:
            item["alpha"] = v.alpha
        if v.mask is not None:
            item["mask"] = v.mask
        return item


def every_nth_split(names: Sequence[str], test_every: int) -> tuple[list[int], list[int]]:
    """Mip-NeRF 360 hold-out: sorted by name, every `test_every`-th image (0, 8, 16...) is test."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    if test_every <= 0:
        return sorted(order), []
    test = sorted(order[k] for k in range(0, len(order), test_every))
    test_set = set(test)
    return [i for i in range(len(names)) if i not in test_set], test


def _check_unique(names: Sequence[str], source: str) -> None:
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise SplatError(f"{source}: duplicate image name '{dup[0]}' ({len(dup)} duplicated names in all)")


def build_scene(
    raw: RawScene,
    *,
    data_factor: int = 1,
    normalize: NormalizeMode = "cameras",
    test_every: int = 8,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    random_init_points: int = 100_000,
    voxel_size: float | None = None,
    outlier_neighbors: int = 0,
    check_images: bool = True,
    seed: int = 0,
) -> SceneData:
    """Validate a RawScene and turn it into a SceneData (see `load` for the options)."""
    source = raw.source or str(raw.root)
    n = len(raw.names)
    if n == 0:
        raise SplatError(f"{source}: the scene has no images")
    _check_unique(raw.names, source)
    check_poses(raw.viewmats, raw.names, source)
    if data_factor < 1 or int(data_factor) != data_factor:
        raise SplatError(f"data_factor must be a positive integer, got {data_factor}")

    # Plan each view: the size on disk, the pinhole camera after undistortion,
    # and the final size after downscaling. Undistorted cameras are computed
    # once per distinct camera, not per image.
    und: dict[Intrinsics, Intrinsics] = {}
    sources, Ks, sizes = [], [], []
    for i, (name, path, intr) in enumerate(zip(raw.names, raw.image_paths, raw.intrinsics)):
        intr.check(f"{source} (image '{name}')")
        if check_images:
            size = image_size(path)
            if size != (intr.width, intr.height):
                raise SplatError(
                    f"{path}: image is {size[0]}x{size[1]} but its camera in {source} says {intr.width}x{intr.height}"
                )
        mask = raw.mask_paths[i] if raw.mask_paths else None
        if mask is not None and check_images and not mask.is_file():
            raise SplatError(f"{mask}: mask file for image '{name}' is missing")
        pin = intr
        if intr.is_distorted:
            if intr not in und:
                und[intr] = undistorted_camera(intr)
            pin = und[intr]
        w = max(1, round(pin.width / data_factor))
        h = max(1, round(pin.height / data_factor))
        K = pin.K()
        K[0] *= w / pin.width  # pure scaling is exact with pixel centers at +0.5
        K[1] *= h / pin.height
        Ks.append(K)
        sizes.append((w, h))
        sources.append(ViewSource(path, (intr.width, intr.height), (w, h), intr if intr.is_distorted else None, mask))

    needs_cache = any(s.needs_processing for s in sources)
    store = ImageStore(sources, scene_cache_dir(raw.root) if needs_cache else None)

    points, colors, is_sfm = raw.points, raw.point_colors, True
    if points is not None and len(points) and not np.all(np.isfinite(points)):
        raise SplatError(f"{source}: the SfM point cloud contains NaN or infinite coordinates")
    centers = -np.einsum("nji,nj->ni", raw.viewmats[:, :3, :3], raw.viewmats[:, :3, 3])  # [N, 3]
    if points is None or len(points) == 0:
        points, colors = random_points(centers, random_init_points, seed)
        is_sfm = False
    if colors is None:
        colors = np.full_like(points, 0.5)
    points, colors = filter_points(points, colors, voxel_size, outlier_neighbors)

    norm = Normalization.from_scene(centers, points if is_sfm else None, normalize)
    viewmats = norm.apply_viewmats(raw.viewmats)
    points = norm.apply_points(points)

    if raw.splits and raw.splits.get("train"):
        train, test, val = raw.splits.get("train", []), raw.splits.get("test", []), raw.splits.get("val", [])
    else:
        train, test = every_nth_split(raw.names, test_every)
        val = []

    cams = Cameras(
        viewmats=torch.as_tensor(viewmats, dtype=torch.float32),
        Ks=torch.as_tensor(np.stack(Ks), dtype=torch.float32),
        widths=torch.tensor([s[0] for s in sizes], dtype=torch.long),
        heights=torch.tensor([s[1] for s in sizes], dtype=torch.long),
        names=list(raw.names),
    )
    meta = dict(raw.metadata, data_factor=data_factor)
    return SceneData(
        root=raw.root, format=raw.format, cameras=cams, train_indices=list(train), test_indices=list(test),
        val_indices=list(val), points=torch.as_tensor(points, dtype=torch.float32),
        point_colors=torch.as_tensor(colors, dtype=torch.float32), points_are_sfm=is_sfm,
        normalization=norm, background=tuple(background), store=store, metadata=meta,
    )  # fmt: skip
