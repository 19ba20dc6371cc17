"""3D Gaussian Splatting as Markov Chain Monte Carlo (Kheradmand et al. 2024), gsplat defaults.

Every `refine_every` steps in [refine_start, refine_stop): dead Gaussians (opacity
<= min_opacity) are relocated onto live ones sampled by opacity, then the set
grows by `grow_factor` up to `cap_max`. After every step, SGLD noise shaped by each
Gaussian's covariance moves the low-opacity ones. Opacity and scale L1
regularizers are added to the loss.
"""

from __future__ import annotations

from typing import Any

import torch

from splat.training import ops
from splat.training.config import MCMCStrategyConfig
from splat.training.losses import OpacityReg, ScaleReg


class MCMCStrategy:
    name = "mcmc"
    absgrad = False

    def __init__(self, cfg: MCMCStrategyConfig, generator: torch.Generator | None = None):
        self.cfg = cfg
        self.generator = generator
        self.last_stats: dict[str, int] = {}

    def loss_terms(self) -> list:
        return [OpacityReg(self.cfg.opacity_reg), ScaleReg(self.cfg.scale_reg)]

    def step_pre_backward(self, params, optimizers, step: int, info: dict) -> None:
        pass

    @torch.no_grad()
    def step_post_backward(self, params, optimizers, step: int, info: dict) -> bool:
        cfg = self.cfg
        changed = False
        if cfg.refine_start < step < cfg.refine_stop and step % cfg.refine_every == 0:
            dead = torch.sigmoid(params["opacities"]) <= cfg.min_opacity
            n_reloc = ops.relocate(params, optimizers, dead, self.generator, cfg.min_opacity)
            n = len(params["means"])
            n_add = max(0, min(cfg.cap_max, int(cfg.grow_factor * n)) - n)
            ops.sample_add(params, optimizers, n_add, self.generator, cfg.min_opacity)
            self.last_stats = {"relocated": n_reloc, "added": n_add}
            changed = True
        lr = optimizers["means"].param_groups[0]["lr"]
        ops.inject_noise(params, lr * cfg.noise_lr, self.generator)
        return changed

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
