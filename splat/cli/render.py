"""`splat render`: a video of a run along a camera path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro


@dataclass
class Render:
    """Render a run along a camera path (orbit, spiral or through the train views) to a video."""

    run: tyro.conf.Positional[Path]
    """Run directory (or the scene folder's run)."""
    path: Literal["orbit", "spiral", "train"] = "orbit"
    out: Path = Path("video.mp4")
    """Output video (.mp4 via imageio-ffmpeg; .gif also works)."""
    frames: int = 120
    fps: int = 30
    width: int | None = None
    """Frame width (default: the first train camera's); height keeps its aspect ratio."""
    data: Path | None = None
    """The scene folder, if it moved since training."""
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def main(self) -> int:
        import imageio.v3 as iio
        import numpy as np
        import torch

        from splat.atomic import atomic_write
        from splat.errors import SplatError
        from splat.training.loop import resolve_device
        from splat.training.render_path import make_path
        from splat.training.run import open_run

        if self.frames < 1 or self.fps < 1:
            raise SplatError("--frames and --fps must be positive")
        config, data, scene = open_run(self.run, self.device, None if self.data is None else str(self.data))
        device = resolve_device(self.device)
        cams = data.cameras[data.train_indices]
        viewmats = make_path(self.path, cams, self.frames)
        K = cams.Ks[0].clone()
        w, h = int(cams.widths[0]), int(cams.heights[0])
        if self.width is not None:
            s = self.width / w
            K[:2] *= s
            w, h = self.width, max(1, round(h * s))
        w, h = w - w % 2, h - h % 2  # even sizes for yuv420p
        scene = scene.to(device)
        bg = torch.tensor(data.background, device=device)[None]
        frames = []
        with torch.no_grad():
            for V in viewmats:
                colors, _, _ = scene.render(V.to(device), K.to(device), w, h, backgrounds=bg)
                frames.append((colors[0].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8))
        ext = self.out.suffix.lower() or ".mp4"
        try:
            with atomic_write(self.out) as f:
                iio.imwrite(f, np.stack(frames), extension=ext, fps=self.fps,
                            **({"codec": "libx264", "macro_block_size": 1} if ext == ".mp4" else {}))
        except OSError as err:
            raise SplatError(f"cannot write {self.out}: {err}") from None
        print(f"wrote {len(frames)} frames ({w}x{h}, {self.path} path) to {self.out}")
        return 0
