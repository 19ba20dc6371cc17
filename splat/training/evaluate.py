"""Test-view metrics: PSNR, SSIM, and LPIPS when its weights are already on disk."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from splat.training.losses import psnr, ssim


class LPIPS:
    """LPIPS (AlexNet) from the `lpips` package, only when its weights are present locally.

    Never downloads: `available()` is False (with `reason`) when the package, its linear
    layers or torchvision's AlexNet weights are missing.
    """

    def __init__(self, device: torch.device):
        self.model = None
        self.reason = ""
        try:
            import lpips  # noqa: F401
        except ImportError:
            self.reason = "package 'lpips' not installed"
            return
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        alex = list(hub.glob("alexnet-owt-*.pth"))
        if not alex:
            self.reason = f"AlexNet weights not found in {hub} (not downloaded automatically)"
            return
        import lpips

        self.model = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, x: Tensor, y: Tensor) -> float:  # [1, H, W, 3] in [0, 1]
        to = lambda t: t.permute(0, 3, 1, 2) * 2 - 1  # noqa: E731
        return float(self.model(to(x.clamp(0, 1)), to(y)).mean())


@torch.no_grad()
def evaluate(scene, data, indices: list[int], *, background: tuple[float, float, float] | Tensor = (1.0, 1.0, 1.0),
             device: torch.device | str = "cpu", render_dir: str | os.PathLike | None = None, max_renders: int = -1,
             lpips: LPIPS | None = None, sh_degree: int | None = None,
             on_view: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Render `scene` (a GaussianScene in the data's normalized frame) at the given views.

    Returns mean psnr, ssim (and lpips), per-view lists, and the mean render time.
    Writes side-by-side PNGs (render | ground truth) of the first `max_renders` views.
    """
    scene = scene.to(device)
    bg = torch.as_tensor(background, dtype=torch.float32, device=device)
    out: dict[str, Any] = {"psnr": [], "ssim": [], "lpips": [], "names": []}
    t_render = 0.0
    for n, i in enumerate(indices):
        view = data.view(i, with_mask=False)
        gt = view.image.to(device)[None]
        t0 = time.perf_counter()
        colors, _, _ = scene.render(view.viewmat, view.K, gt.shape[2], gt.shape[1], backgrounds=bg[None],
                                    sh_degree=sh_degree if sh_degree is not None else scene.sh_degree)
        t_render += time.perf_counter() - t0
        colors = colors.clamp(0, 1)
        out["psnr"].append(float(psnr(colors, gt)))
        out["ssim"].append(float(ssim(colors, gt)))
        if lpips is not None and lpips.available():
            out["lpips"].append(lpips(colors, gt))
        out["names"].append(data.names[i])
        if render_dir is not None and (max_renders < 0 or n < max_renders):
            from PIL import Image

            Path(render_dir).mkdir(parents=True, exist_ok=True)
            pair = torch.cat([colors[0], gt[0]], dim=1)
            Image.fromarray((pair.cpu().numpy() * 255 + 0.5).astype(np.uint8)).save(
                Path(render_dir) / f"{n:04d}_{Path(data.names[i]).stem}.png")
        if on_view is not None:
            on_view(n + 1, len(indices))
    summary = {
        "psnr": float(np.mean(out["psnr"])) if out["psnr"] else float("nan"),
        "ssim": float(np.mean(out["ssim"])) if out["ssim"] else float("nan"),
        "lpips": float(np.mean(out["lpips"])) if out["lpips"] else None,
        "num_views": len(indices),
        "render_ms": 1000 * t_render / max(1, len(indices)),
        "per_view": {"names": out["names"], "psnr": out["psnr"], "ssim": out["ssim"]},
    }
    if lpips is not None and not lpips.available():
        summary["lpips_skipped"] = lpips.reason
    return summary
