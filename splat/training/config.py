"""Training configuration: one dataclass tree, two presets (`fast`, `full`).

Everything a run needs is here, so `config.yml` in a run directory fully
describes it (and `splat train --config run/config.yml` repeats it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Device = Literal["auto", "cpu", "cuda"]
StrategyName = Literal["default", "mcmc"]


@dataclass
class OptimConfig:
    """Adam learning rates (the 3DGS / gsplat defaults)."""

    means_lr: float = 1.6e-4  # multiplied by the scene extent
    means_lr_final_factor: float = 0.01  # exponential decay to means_lr * this at max_steps
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    eps: float = 1e-15


@dataclass
class DefaultStrategyConfig:
    """Clone / split by view-space gradient, prune by opacity and size, opacity reset."""

    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01  # x scene extent: below clones, above splits
    grow_scale2d: float = 0.05  # x image size: splits Gaussians this big on screen (until refine_scale2d_stop)
    prune_scale3d: float = 0.1
    prune_scale2d: float = 0.15
    refine_scale2d_stop: int = 0
    refine_start: int = 500
    refine_stop: int = 15_000
    reset_every: int = 3_000
    refine_every: int = 100
    pause_refine_after_reset: int = 0
    absgrad: bool = False  # AbsGS: accumulate |grad|; use grow_grad2d ~0.0008 with it
    revised_opacity: bool = False  # "Revising densification" opacity correction on split


@dataclass
class MCMCStrategyConfig:
    """3DGS as MCMC: relocate dead Gaussians, SGLD position noise, a Gaussian cap."""

    cap_max: int = 300_000
    noise_lr: float = 5e5
    refine_start: int = 500
    refine_stop: int = 25_000
    refine_every: int = 100
    min_opacity: float = 0.005
    grow_factor: float = 1.05
    opacity_reg: float = 0.01
    scale_reg: float = 0.01


@dataclass
class LossConfig:
    ssim_lambda: float = 0.2  # loss = (1 - l) L1 + l (1 - SSIM)
    opacity_reg: float = 0.0  # extra regularizers (MCMC adds its own)
    scale_reg: float = 0.0


@dataclass
class TrainConfig:
    """A static-scene 3DGS training run."""

    data: str = ""  # scene folder (COLMAP, Blender, nerfstudio, LLFF)
    output_dir: str = "outputs"  # runs go to <output_dir>/<scene>/<method>/<timestamp>/
    run_name: str | None = None  # instead of the timestamp
    preset: str = "full"
    data_factor: int = 1
    test_every: int = 8
    normalize: Literal["cameras", "points", "none"] = "cameras"
    device: Device = "auto"
    seed: int = 42
    max_steps: int = 30_000
    strategy: StrategyName = "default"
    default: DefaultStrategyConfig = field(default_factory=DefaultStrategyConfig)
    mcmc: MCMCStrategyConfig = field(default_factory=MCMCStrategyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # initialization
    init: Literal["auto", "sfm", "random"] = "auto"  # auto: SfM points when the dataset has them
    init_num_pts: int = 100_000
    # random init: a cube around the cameras' focus of half-size init_extent x the mean
    # camera-to-focus distance (3DGS's NeRF-synthetic cube: 1.3 / 4.03 = 0.32); points
    # no training camera sees are redrawn, since nothing would ever constrain them
    init_extent: float = 0.35
    init_opacity: float = 0.1
    init_scale: float = 1.0  # x mean distance to the 3 nearest neighbours
    max_init_points: int = 300_000  # SfM clouds are subsampled above this
    # rendering
    sh_degree: int = 3
    sh_degree_interval: int = 1_000
    # auto: random (a new color each step) when the images have alpha, which keeps
    # transparent regions free of floaters; else white
    background: Literal["auto", "white", "black", "random"] = "auto"
    antialiased: bool = False  # mip-splatting 2D filter (rasterizer's antialiased mode)
    mip_filter_3d: bool = False  # mip-splatting 3D smoothing filter (with antialiased: full Mip-Splatting)
    mip_filter_every: int = 100  # recompute the 3D filter during densification
    # hooks the degradation-robust trainers use
    appearance: Literal["none", "exposure", "affine"] = "none"
    appearance_lr: float = 1e-3
    pose_opt: bool = False
    pose_lr: float = 1e-5
    pose_reg: float = 1e-6
    # outputs
    eval_steps: list[int] = field(default_factory=lambda: [7_000, 30_000])
    ckpt_every: int = 1_000
    keep_ckpts: int = 2
    save_renders: int = 8  # test views rendered to renders/ at the end (-1: all)
    log_every: int = 10  # training-curve sampling
    progress: bool = True
    # viewer
    viewer: bool = False
    viewer_host: str = "127.0.0.1"
    viewer_port: int = 8080

    @property
    def method(self) -> str:
        return "3dgs-mcmc" if self.strategy == "mcmc" else "3dgs"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    kwargs = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in d.items():
        if key not in known:
            raise ValueError(f"unknown config key {key!r} for {cls.__name__}")
        sub = _NESTED.get((cls, key))
        kwargs[key] = _from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


_NESTED = {
    (TrainConfig, "default"): DefaultStrategyConfig,
    (TrainConfig, "mcmc"): MCMCStrategyConfig,
    (TrainConfig, "optim"): OptimConfig,
    (TrainConfig, "loss"): LossConfig,
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """`full`: the 30k-step 3DGS schedule. `fast`: a few minutes on 2 CPU cores.

    Overrides are TrainConfig fields; strategy fields may be given as `default=...`.
    """
    if name == "full":
        cfg = TrainConfig(preset="full")
    elif name == "fast":
        cfg = TrainConfig(
            preset="fast",
            max_steps=2_000,
            sh_degree=1,
            sh_degree_interval=500,
            init_num_pts=20_000,
            init_extent=0.6,  # the built-in scene's ground plane reaches past the cameras
            max_init_points=50_000,
            eval_steps=[2_000],
            ckpt_every=500,
            default=DefaultStrategyConfig(refine_start=200, refine_stop=1_500, reset_every=100_000,
                                          refine_every=100),
            mcmc=MCMCStrategyConfig(cap_max=60_000, refine_start=200, refine_stop=1_600, refine_every=100),
        )
    else:
        raise ValueError(f"unknown preset {name!r} (fast, full)")
    return dataclasses.replace(cfg, **overrides)
