"""`splat train`: a capture folder -> a trained Gaussian scene (run directory)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from splat.errors import SplatError


@dataclass
class Train:
    """Train a 3D Gaussian splatting scene from a capture (COLMAP, Blender, nerfstudio, LLFF)."""

    data: Path | None = None
    """Scene folder, or 'synthetic' for the built-in procedural scene (rendered once, no download)."""
    preset: Literal["fast", "full"] = "full"
    """fast: ~2k steps, SH 1 (a few minutes on 2 CPU cores); full: the 30k-step 3DGS schedule."""
    strategy: Literal["default", "mcmc"] | None = None
    """Densification: default (clone/split/prune, INRIA) or mcmc (relocation, SGLD, a Gaussian cap)."""
    max_steps: int | None = None
    """Number of optimization steps (default: the preset's)."""
    data_factor: int | None = None
    """Downscale the images by this integer."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when available, else CPU."""
    output_dir: Path | None = None
    """Runs go to <output-dir>/<scene>/<method>/<timestamp>/ (default: outputs)."""
    run_name: str | None = None
    """Use this instead of the timestamp."""
    seed: int | None = None
    sh_degree: int | None = None
    """Highest SH degree (0-3), raised every sh-degree-interval steps."""
    init_num_pts: int | None = None
    """Random initialization (no SfM points): how many Gaussians."""
    cap_max: int | None = None
    """MCMC: the most Gaussians."""
    background: Literal["auto", "white", "black", "random"] | None = None
    """Training background behind transparent pixels (auto: random when the images have alpha)."""
    mip: bool = False
    """Mip-Splatting anti-aliasing: the 3D smoothing filter and the 2D mip filter."""
    absgrad: bool = False
    """default strategy: AbsGS gradient (grow threshold 0.0008)."""
    grow_grad2d: float | None = None
    """default strategy: clone/split threshold on the mean view-space gradient (INRIA:
    0.0002). Lower means more Gaussians: 0.0001 took lego 7k from 32.7 to 33.5 dB with
    2.3x the Gaussians."""
    appearance: Literal["none", "exposure", "affine"] | None = None
    """Per-image color correction during training."""
    pose_opt: bool = False
    """Refine the training camera poses."""
    ckpt_every: int | None = None
    """Write a checkpoint every N steps (a kill loses at most this many)."""
    config: Path | None = None
    """Start from a config.yml (e.g. a previous run's); the options above override it."""
    resume: Path | None = None
    """Continue a run directory from its newest checkpoint (same result as an uninterrupted run)."""
    viewer: bool = False
    """Watch the training live in the browser."""
    viewer_host: str = "127.0.0.1"
    viewer_port: int = 8080
    quiet: bool = False
    """No progress bar."""

    def build_config(self):
        from splat.training.config import TrainConfig, preset
        from splat.training.outputs import read_config

        if self.config is not None:
            if self.config.is_dir():
                cfg = read_config(self.config)
            else:
                import yaml

                try:
                    cfg = TrainConfig.from_dict(yaml.safe_load(self.config.read_text()))
                except (OSError, ValueError, TypeError) as err:
                    raise SplatError(f"--config {self.config}: {err}") from None
        else:
            cfg = preset(self.preset)
        o: dict = {}
        for name in ("strategy", "max_steps", "data_factor", "run_name", "seed", "sh_degree", "background",
                     "appearance", "ckpt_every", "init_num_pts"):
            value = getattr(self, name)
            if value is not None:
                o[name] = value
        if self.data is not None:
            o["data"] = str(self.data)
            if str(self.data) == "synthetic" and not self.data.exists():
                from splat.datasets.synthetic import builtin_scene

                o["data"] = str(builtin_scene())
        if self.output_dir is not None:
            o["output_dir"] = str(self.output_dir)
        o.update(device=self.device, viewer=self.viewer, viewer_host=self.viewer_host, viewer_port=self.viewer_port,
                 progress=not self.quiet)
        if self.mip:
            o.update(antialiased=True, mip_filter_3d=True)
        if self.pose_opt:
            o["pose_opt"] = True
        if self.absgrad:
            o["default"] = dataclasses.replace(cfg.default, absgrad=True, grow_grad2d=0.0008)
        if self.grow_grad2d is not None:
            if not self.grow_grad2d > 0:
                raise SplatError(f"--grow-grad2d must be positive, got {self.grow_grad2d}")
            o["default"] = dataclasses.replace(o.get("default", cfg.default), grow_grad2d=self.grow_grad2d)
        if self.cap_max is not None:
            o["mcmc"] = dataclasses.replace(cfg.mcmc, cap_max=self.cap_max)
        cfg = dataclasses.replace(cfg, **o)
        if "max_steps" in o and self.config is None:  # evaluate at the end of a shortened run
            cfg.eval_steps = [s for s in cfg.eval_steps if s < cfg.max_steps] + [cfg.max_steps]
        return cfg

    def main(self) -> int:
        from splat.training.loop import Trainer

        if self.resume is not None:
            if not (self.resume / "config.yml").is_file():
                raise SplatError(f"--resume {self.resume}: not a run directory (no config.yml)")
            keep = {k: v for k, v in {"max_steps": self.max_steps}.items() if v is not None}
            trainer = Trainer.resume(self.resume, device=self.device, progress=not self.quiet, **keep)
            print(f"resuming {self.resume} at step {trainer.step}")
        else:
            cfg = self.build_config()
            if not cfg.data:
                raise SplatError("no scene given: pass --data DIR (or --resume RUN_DIR)")
            trainer = Trainer(cfg)
        if self.viewer:
            attach_viewer(trainer, self.viewer_host, self.viewer_port)
        d = trainer.data
        print(f"{d.format} scene {d.root}: {len(d.train_indices)} train / {len(d.test_indices)} test views, "
              f"{len(trainer.params['means']):,} initial Gaussians, {trainer.config.strategy} strategy, "
              f"{trainer.config.max_steps} steps on {trainer.device}")
        run_dir = trainer.train()
        last = trainer.evals[-1] if trainer.evals else {}
        init = trainer.initial_eval or {}
        print(f"done in {trainer.elapsed:.0f} s: test PSNR {last.get('psnr', float('nan')):.2f} dB "
              f"(initial {init.get('psnr', float('nan')):.2f}), SSIM {last.get('ssim', float('nan')):.3f}, "
              f"{len(trainer.params['means']):,} Gaussians")
        print(f"run directory: {run_dir}")
        return 0


def attach_viewer(trainer, host: str, port: int) -> None:
    try:
        from splat.viewer.training import TrainingViewer
    except ImportError as err:
        raise SplatError(f"--viewer: the training viewer is not available ({err}); "
                         "install the viewer extras or train without --viewer") from None
    trainer.add_observer(TrainingViewer(trainer, host=host, port=port))
