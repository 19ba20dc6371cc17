"""`splat eval`: test-view metrics of a run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro


@dataclass
class Eval:
    """PSNR and SSIM of a run on its test views (LPIPS only when its weights are already on disk)."""

    run: tyro.conf.Positional[Path]
    """Run directory (outputs/<scene>/<method>/<timestamp>)."""
    split: Literal["test", "train", "val"] = "test"
    data: Path | None = None
    """The scene folder, if it moved since training."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    renders: int = 0
    """Write this many render|ground-truth PNGs to <run>/eval/ (-1: all)."""
    lpips: bool = True
    """Compute LPIPS when the `lpips` package and weights are present locally (never downloads)."""

    def main(self) -> int:
        from splat.atomic import atomic_write
        from splat.errors import SplatError
        from splat.training.evaluate import LPIPS, evaluate
        from splat.training.loop import resolve_device
        from splat.training.run import open_run

        config, data, scene = open_run(self.run, self.device, None if self.data is None else str(self.data))
        idx = {"test": data.test_indices, "train": data.train_indices, "val": data.val_indices}[self.split]
        if not idx:
            raise SplatError(f"{config.data}: no {self.split} views")
        device = resolve_device(self.device)
        lp = LPIPS(device) if self.lpips else None
        res = evaluate(scene, data, idx, background=data.background, device=device,
                       render_dir=self.run / "eval" / self.split if self.renders else None,
                       max_renders=self.renders, lpips=lp)
        line = f"{self.split}: {len(idx)} views, PSNR {res['psnr']:.3f} dB, SSIM {res['ssim']:.4f}"
        line += f", LPIPS {res['lpips']:.4f}" if res["lpips"] is not None else ""
        print(line + f", {len(scene):,} Gaussians, {res['render_ms']:.1f} ms/view")
        if res.get("lpips_skipped"):
            print(f"LPIPS skipped: {res['lpips_skipped']}")
        with atomic_write(self.run / f"eval_{self.split}.json", "w") as f:
            json.dump(res, f, indent=1)
        return 0
