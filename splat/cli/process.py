"""`splat process`: photos or a video -> a COLMAP scene folder that `splat train` takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from splat.errors import SplatError


@dataclass
class Process:
    """Run structure-from-motion (pycolmap, CPU) on photos or a video and write a COLMAP scene."""

    output: Path
    """Scene folder to create (images/, sparse/0/, database.db); must be new or empty."""
    images: Path | None = None
    """Folder of photos (.jpg/.png); they are copied, never modified."""
    video: Path | None = None
    """A video file to sample frames from (instead of --images)."""
    fps: float = 2.0
    """Frames per second taken from --video."""
    matching: Literal["exhaustive", "sequential"] = "exhaustive"
    """Exhaustive for unordered photos (up to a few hundred); sequential for video."""
    camera_model: Literal["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"] = "SIMPLE_RADIAL"
    """COLMAP camera model shared by all images."""
    max_image_size: int = 1600
    """Longest side used for feature extraction."""
    min_registered: float = 0.5
    """Fail when fewer than this fraction of the images register."""
    seed: int = 0
    verbose: bool = False
    """Show COLMAP's own log."""

    def main(self) -> int:
        from splat.datasets.sfm import run_sfm

        if (self.images is None) == (self.video is None):
            raise SplatError("give exactly one of --images DIR or --video FILE")
        summary = run_sfm(
            self.images, self.output, video=self.video, fps=self.fps, matching=self.matching,
            camera_model=self.camera_model, max_image_size=self.max_image_size,
            min_registered=self.min_registered, seed=self.seed, verbose=self.verbose,
        )  # fmt: skip
        print(f"splat process: {summary}")
        print(f"next: splat train --data {summary.out_dir}")
        return 0
