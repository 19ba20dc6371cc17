"""Multi-view video for the streaming trainer: synchronized fixed cameras.

Layouts (all need every camera to have the same number of frames):

* ``video``: ``cam00.mp4 cam01.mp4 ...`` + ``poses_bounds.npy`` (N3DV), one
  pose row per camera in sorted order; decoded with imageio-ffmpeg.
* ``frames``: ``cam00/000000.png ...`` + ``poses_bounds.npy``.
* ``colmap_frames``: ``frame000000/{images,sparse/0}`` ...; cameras come from
  the first frame's model, each frame may carry its own SfM points.

`VideoScene.frame(t)` decodes frame t of every camera only when asked; a
per-camera reader keeps its position, so reading t = 0, 1, 2 ... streams each
file once instead of seeking from the start every time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from splat.errors import SplatError

from .cameras import Cameras, check_poses, invert_rigid
from .images import read_image, resize
from .llff import list_images, read_poses_bounds
from .normalize import Normalization, NormalizeMode

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30, crf: int = 12) -> None:
    """Write uint8 [H, W, 3] frames as H.264 (near-lossless crf), atomically."""
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264", quality=None,
                                         macro_block_size=1, pix_fmt_out="yuv444p",
                                         output_params=["-crf", str(crf)])  # fmt: skip
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f[..., :3]))
    writer.close()
    os.replace(tmp, path)


class _VideoReader:
    """Sequential decoder for one file that can restart when asked for an earlier frame."""

    def __init__(self, path: Path):
        import imageio_ffmpeg

        self.path = path
        try:
            self.n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        except Exception as err:
            raise SplatError(f"{path}: unreadable video ({str(err).strip().splitlines()[-1]})") from None
        self._gen: Iterator | None = None
        self._next = 0
        self.size: tuple[int, int] | None = None

    def _open(self) -> None:
        import imageio_ffmpeg

        self._gen = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24")
        meta = next(self._gen)
        self.size = tuple(meta["size"])
        self._next = 0

    def read(self, t: int) -> np.ndarray:
        if not 0 <= t < self.n_frames:
            raise IndexError(f"{self.path}: frame {t} out of range (0..{self.n_frames - 1})")
        if self._gen is None or t < self._next:
            self._open()
        while True:
            try:
                buf = next(self._gen)
            except StopIteration:
                raise SplatError(f"{self.path}: video ended before frame {t}") from None
            self._next += 1
            if self._next - 1 == t:
                w, h = self.size
                return np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)

    def __getstate__(self):  # DataLoader workers reopen their own decoder
        return {"path": self.path, "n_frames": self.n_frames, "_gen": None, "_next": 0, "size": None}


@dataclass
class VideoScene:
    """K fixed, synchronized cameras over T frames (poses in the normalized frame)."""

    root: Path
    format: str
    cameras: Cameras  # K cameras, names "cam00" ... (or the COLMAP image names)
    num_frames: int
    normalization: Normalization
    data_factor: int = 1
    fps: float | None = None
    _sources: list = field(default_factory=list, repr=False)  # per camera: reader or list of paths
    _source_sizes: list = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return self.num_frames

    def image(self, t: int, cam: int) -> Tensor:
        """Frame t of camera `cam`: float32 [H, W, 3] in [0, 1]."""
        src = self._sources[cam]
        if isinstance(src, _VideoReader):
            arr = src.read(t)
        else:
            if not 0 <= t < len(src):
                raise IndexError(f"frame {t} out of range (0..{len(src) - 1})")
            arr = read_image(src[t])[..., :3]
        if (arr.shape[1], arr.shape[0]) != self._source_sizes[cam]:
            raise SplatError(
                f"{self.root} camera {self.cameras.names[cam]} frame {t}: image is {arr.shape[1]}x{arr.shape[0]} "
                f"but the camera says {self._source_sizes[cam][0]}x{self._source_sizes[cam][1]}"
            )
        w, h = int(self.cameras.widths[cam]), int(self.cameras.heights[cam])
        return torch.tensor(resize(arr, (w, h)), dtype=torch.float32) / 255.0

    def frame(self, t: int) -> Tensor:
        """Frame t of every camera: float32 [K, H, W, 3] (cameras share one size)."""
        return torch.stack([self.image(t, c) for c in range(len(self.cameras))])

    def frame_points(self, t: int) -> tuple[Tensor, Tensor] | None:
        """SfM points [P, 3] and colors [P, 3] of frame t (colmap_frames layout only)."""
        if self.format != "colmap_frames":
            return None
        from .colmap import find_sparse_dir, read_model

        rec = read_model(find_sparse_dir(self.root / f"frame{t:06d}"))
        xyz = np.array([p.xyz for p in rec.points3D.values()]).reshape(-1, 3)
        rgb = np.array([p.color for p in rec.points3D.values()]).reshape(-1, 3) / 255.0
        return (torch.as_tensor(self.normalization.apply_points(xyz), dtype=torch.float32),
                torch.as_tensor(rgb, dtype=torch.float32))  # fmt: skip


def _cameras(viewmats: np.ndarray, Ks: np.ndarray, sizes: list[tuple[int, int]], names: list[str],
             data_factor: int, norm: Normalization) -> Cameras:  # fmt: skip
    Ks = Ks.copy()
    out_sizes = []
    for i, (w, h) in enumerate(sizes):
        ow, oh = max(1, round(w / data_factor)), max(1, round(h / data_factor))
        Ks[i, 0] *= ow / w
        Ks[i, 1] *= oh / h
        out_sizes.append((ow, oh))
    return Cameras(
        torch.as_tensor(norm.apply_viewmats(viewmats), dtype=torch.float32), torch.as_tensor(Ks, dtype=torch.float32),
        torch.tensor([s[0] for s in out_sizes]), torch.tensor([s[1] for s in out_sizes]), names,
    )  # fmt: skip


def load_video(path: str | os.PathLike, format: str = "auto", data_factor: int = 1,
               normalize: NormalizeMode = "cameras") -> VideoScene:  # fmt: skip
    """Load a multi-view video layout (see the module docstring)."""
    from .loader import detect_format

    root = Path(path).expanduser()
    fmt = detect_format(root) if format == "auto" else format
    if fmt == "colmap_frames":
        return _load_colmap_frames(root, data_factor, normalize)
    if fmt not in ("video", "frames"):
        raise SplatError(f"{root}: not a multi-view video layout (found '{fmt}')")
    if fmt == "video":
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))
        sources: list = [_VideoReader(p) for p in files]
        names = [p.stem for p in files]
        counts = [s.n_frames for s in sources]
    else:
        dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("cam"))
        sources = [list_images(d) for d in dirs]
        names = [d.name for d in dirs]
        counts = [len(s) for s in sources]
        for d, s in zip(dirs, sources):
            if not s:
                raise SplatError(f"{d}: camera folder has no frames")
    if not sources:
        raise SplatError(f"{root}: no cameras found")
    if len(set(counts)) != 1:
        raise SplatError(f"{root}: cameras are not synchronized: frame counts {dict(zip(names, counts))}")
    pb = root / "poses_bounds.npy"
    if not pb.is_file():
        raise SplatError(f"{pb}: missing (one camera pose per video is needed)")
    c2w, hwf, _ = read_poses_bounds(pb)
    if len(c2w) != len(names):
        raise SplatError(f"{pb}: has {len(c2w)} poses but {root} has {len(names)} cameras")
    viewmats = invert_rigid(c2w)
    check_poses(viewmats, names, str(pb))
    Ks, sizes = [], []
    for i, (h, w, f) in enumerate(hwf):
        sizes.append((int(round(w)), int(round(h))))
        Ks.append([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    # the first frame's size must match the poses file
    for i, s in enumerate(sources):
        arr = s.read(0) if isinstance(s, _VideoReader) else read_image(s[0])
        if (arr.shape[1], arr.shape[0]) != sizes[i]:
            where = s.path if isinstance(s, _VideoReader) else s[0]
            raise SplatError(f"{where}: frames are {arr.shape[1]}x{arr.shape[0]} but {pb} says {sizes[i][0]}x{sizes[i][1]}")
    norm = Normalization.from_scene(c2w[:, :3, 3], None, normalize)
    cams = _cameras(viewmats, np.array(Ks), sizes, names, data_factor, norm)
    return VideoScene(root, fmt, cams, counts[0], norm, data_factor, None, sources, sizes)


def _load_colmap_frames(root: Path, data_factor: int, normalize: NormalizeMode) -> VideoScene:
    from .colmap import read_colmap

    frames = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("frame"))
    raw = read_colmap(frames[0])
    check_poses(raw.viewmats, raw.names, raw.source)
    for intr in raw.intrinsics:
        if intr.is_distorted:
            raise SplatError(f"{raw.source}: per-frame COLMAP video needs undistorted (pinhole) cameras")
    sources = []
    for name in raw.names:
        paths = [f / "images" / name for f in frames]
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            raise SplatError(f"{missing}: image file is missing")
        sources.append(paths)
    norm = Normalization.from_scene(invert_rigid(raw.viewmats)[:, :3, 3], raw.points, normalize)
    Ks = np.stack([i.K() for i in raw.intrinsics])
    sizes = [(i.width, i.height) for i in raw.intrinsics]
    cams = _cameras(raw.viewmats, Ks, sizes, raw.names, data_factor, norm)
    return VideoScene(root, "colmap_frames", cams, len(frames), norm, data_factor, None, sources, sizes)
