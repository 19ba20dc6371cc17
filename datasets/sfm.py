"""Structure-from-motion with pycolmap on the CPU: photos or a video -> a COLMAP scene.

Output folder (what `splat train` and `splat.datasets.load` take)::

    out/images/       copies of the input images (the user's folder is untouched)
    out/sparse/0/     cameras.bin images.bin points3D.bin (the largest model)
    out/database.db   COLMAP's feature/match database (kept for re-runs)
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from splat.errors import SplatError

from .llff import IMAGE_EXTS

Matching = Literal["exhaustive", "sequential"]


@dataclass
class SfmSummary:
    out_dir: Path
    n_images: int
    n_registered: int
    n_points: int
    mean_reprojection_error: float  # pixels
    seconds: float

    def __str__(self) -> str:
        return (f"registered {self.n_registered}/{self.n_images} images, {self.n_points} points, "
                f"mean reprojection error {self.mean_reprojection_error:.3f} px, {self.seconds:.1f} s -> {self.out_dir}")  # fmt: skip


def extract_video_frames(video: Path, out_images: Path, fps: float) -> int:
    """Decode `video` at `fps` frames per second into out_images/000000.jpg ...; returns the count."""
    import imageio_ffmpeg
    from PIL import Image

    if not video.is_file():
        raise SplatError(f"{video}: video file is missing")
    if fps <= 0:
        raise SplatError(f"--fps must be positive, got {fps}")
    out_images.mkdir(parents=True, exist_ok=True)
    try:
        gen = imageio_ffmpeg.read_frames(str(video), pix_fmt="rgb24", output_params=["-vf", f"fps={fps}"])
        meta = next(gen)
    except Exception as err:
        raise SplatError(f"{video}: unreadable video ({str(err).strip().splitlines()[-1]})") from None
    import numpy as np

    w, h = meta["size"]
    n = 0
    for buf in gen:
        Image.fromarray(np.frombuffer(buf, np.uint8).reshape(h, w, 3)).save(out_images / f"{n:06d}.jpg", quality=95)
        n += 1
    return n


def run_sfm(
    images: Path | None,
    out_dir: Path,
    *,
    video: Path | None = None,
    fps: float = 2.0,
    matching: Matching = "exhaustive",
    camera_model: str = "SIMPLE_RADIAL",
    single_camera: bool = True,
    max_image_size: int = 1600,
    min_registered: float = 0.5,
    seed: int = 0,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> SfmSummary:
    """SIFT extraction, exhaustive or sequential matching, incremental mapping.

    Raises SplatError when fewer than `min_registered` (a fraction) of the
    images, or fewer than 3, end up in the model.
    """
    import pycolmap

    start = time.time()
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SplatError(f"{out_dir}: output folder exists and is not empty")
    if video is not None:
        n = extract_video_frames(Path(video), img_dir, fps)
        log(f"extracted {n} frames from {video} at {fps} fps")
    else:
        src = Path(images)
        if not src.is_dir():
            raise SplatError(f"{src}: image folder does not exist")
        files = sorted(p for p in src.iterdir() if p.suffix in IMAGE_EXTS and not p.name.startswith("."))
        if not files:
            raise SplatError(f"{src}: no images (.jpg/.png) in the folder")
        img_dir.mkdir(parents=True)
        for p in files:
            shutil.copy2(p, img_dir / p.name)
    names = sorted(p.name for p in img_dir.iterdir())
    if len(names) < 3:
        raise SplatError(f"{img_dir}: structure-from-motion needs at least 3 images, got {len(names)}")

    pycolmap.set_random_seed(seed)
    if not verbose:
        pycolmap.logging.minloglevel = 2  # COLMAP's per-image INFO lines drown the progress
    db = out_dir / "database.db"
    log(f"[1/3] extracting SIFT features from {len(names)} images")
    reader = pycolmap.ImageReaderOptions(camera_model=camera_model)
    extraction = pycolmap.FeatureExtractionOptions(max_image_size=max_image_size)
    pycolmap.extract_features(
        db, img_dir, camera_mode=pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.AUTO,
        reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu,
    )  # fmt: skip
    log(f"[2/3] {matching} matching")
    if matching == "sequential":
        pycolmap.match_sequential(db, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(db, device=pycolmap.Device.cpu)
    log("[3/3] incremental mapping")
    opts = pycolmap.IncrementalPipelineOptions(random_seed=seed)
    count = [0]

    def on_image() -> None:
        count[0] += 1
        if count[0] % 10 == 0:
            log(f"      registered {count[0]} images")

    models = pycolmap.incremental_mapping(db, img_dir, out_dir / "sparse_all", options=opts, next_image_callback=on_image)
    best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
    n_reg = best.num_reg_images() if best is not None else 0
    if n_reg < max(3, min_registered * len(names)):
        raise SplatError(
            f"{img_dir}: only {n_reg} of {len(names)} images could be registered; the photos need more overlap "
            "and texture (try --matching exhaustive, more images, or sharper photos)"
        )
    sparse = out_dir / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    best.write(sparse)
    shutil.rmtree(out_dir / "sparse_all", ignore_errors=True)
    return SfmSummary(out_dir, len(names), n_reg, best.num_points3D(), best.compute_mean_reprojection_error(),
                      time.time() - start)  # fmt: skip
