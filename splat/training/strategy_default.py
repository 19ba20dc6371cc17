"""The INRIA 3DGS densification (gsplat's DefaultStrategy defaults).

Every `refine_every` steps between `refine_start` and `refine_stop`: Gaussians
whose mean view-space gradient (NDC units) exceeds `grow_grad2d` are cloned when
small (max scale <= grow_scale3d x scene extent) and split when large; then
Gaussians with opacity < prune_opa (and, after the first opacity reset, the too
large ones) are removed. Every `reset_every` steps opacities are clamped to
2 x prune_opa. `absgrad=True` accumulates |grad| (AbsGS).
"""

from __future__ import annotations

from typing import Any

import torch

from splat.training import ops
from splat.training.config import DefaultStrategyConfig


class DefaultStrategy:
    name = "default"

    def __init__(self, cfg: DefaultStrategyConfig, scene_scale: float, generator: torch.Generator | None = None):
        self.cfg = cfg
        self.scene_scale = scene_scale
        self.generator = generator
        self.state: dict[str, Any] = {"grad2d": None, "count": None, "radii": None}
        self.last_stats: dict[str, int] = {}

    @property
    def absgrad(self) -> bool:
        return self.cfg.absgrad

    def loss_terms(self) -> list:
        return []

    def step_pre_backward(self, params, optimizers, step: int, info: dict) -> None:
        info["meta"].means2d.retain_grad()

    @torch.no_grad()
    def step_post_backward(self, params, optimizers, step: int, info: dict) -> bool:
        cfg = self.cfg
        if step >= cfg.refine_stop:
            return False
        self._accumulate(params, info)
        changed = False
        if step > cfg.refine_start and step % cfg.refine_every == 0 and step % cfg.reset_every >= cfg.pause_refine_after_reset:
            n_dupli, n_split = self._grow(params, optimizers, step)
            n_prune = self._prune(params, optimizers, step)
            self.last_stats = {"cloned": n_dupli, "split": n_split, "pruned": n_prune}
            n = len(params["means"])
            self.state = {"grad2d": torch.zeros(n, device=params["means"].device),
                          "count": torch.zeros(n, device=params["means"].device),
                          "radii": torch.zeros(n, device=params["means"].device) if cfg.refine_scale2d_stop > 0 else None}
            changed = True
        if step % cfg.reset_every == 0 and step > 0:
            ops.reset_opacity(params, optimizers, value=cfg.prune_opa * 2.0)
        return changed

    def _accumulate(self, params, info: dict) -> None:
        meta = info["meta"]
        grads = (meta.means2d.absgrad if self.cfg.absgrad else meta.means2d.grad)
        if grads is None:
            return
        grads = grads.clone()
        grads[..., 0] *= meta.width / 2.0 * info["n_cameras"]  # pixels -> NDC, undo the batch mean
        grads[..., 1] *= meta.height / 2.0 * info["n_cameras"]
        n = len(params["means"])
        if self.state["grad2d"] is None or len(self.state["grad2d"]) != n:
            self.state["grad2d"] = torch.zeros(n, device=grads.device)
            self.state["count"] = torch.zeros(n, device=grads.device)
        if self.cfg.refine_scale2d_stop > 0 and (self.state["radii"] is None or len(self.state["radii"]) != n):
            self.state["radii"] = torch.zeros(n, device=grads.device)
        visible = (meta.radii > 0).all(-1)  # [C, N]
        cam, gid = torch.where(visible)
        self.state["grad2d"].index_add_(0, gid, grads[cam, gid].norm(dim=-1))
        self.state["count"].index_add_(0, gid, torch.ones_like(gid, dtype=torch.float32))
        if self.state["radii"] is not None:
            r = meta.radii[cam, gid].max(-1).values.float() / float(max(meta.width, meta.height))
            self.state["radii"][gid] = torch.maximum(self.state["radii"][gid], r)

    def _grow(self, params, optimizers, step: int) -> tuple[int, int]:
        cfg = self.cfg
        if self.state["grad2d"] is None:
            return 0, 0
        grads = self.state["grad2d"] / self.state["count"].clamp_min(1)
        is_grad_high = grads > cfg.grow_grad2d
        is_small = torch.exp(params["scales"]).max(-1).values <= cfg.grow_scale3d * self.scene_scale
        is_dupli = is_grad_high & is_small
        n_dupli = int(is_dupli.sum())
        is_split = is_grad_high & ~is_small
        if step < cfg.refine_scale2d_stop and self.state["radii"] is not None:
            is_split |= self.state["radii"] > cfg.grow_scale2d
        n_split = int(is_split.sum())
        if n_dupli:
            ops.duplicate(params, optimizers, is_dupli)
        is_split = torch.cat([is_split, torch.zeros(n_dupli, dtype=torch.bool, device=is_split.device)])
        if n_split:
            ops.split(params, optimizers, is_split, self.generator, self.cfg.revised_opacity)
        return n_dupli, n_split

    def _prune(self, params, optimizers, step: int) -> int:
        cfg = self.cfg
        prune = torch.sigmoid(params["opacities"]) < cfg.prune_opa
        if step > cfg.reset_every:
            prune |= torch.exp(params["scales"]).max(-1).values > cfg.prune_scale3d * self.scene_scale
            if step < cfg.refine_scale2d_stop and self.state["radii"] is not None:
                radii = torch.cat([self.state["radii"], self.state["radii"].new_zeros(len(prune) - len(self.state["radii"]))])
                prune |= radii > cfg.prune_scale2d
        n = int(prune.sum())
        if n:
            ops.remove(params, optimizers, prune)
        return n

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.state.items() if v is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {"grad2d": state.get("grad2d"), "count": state.get("count"), "radii": state.get("radii")}
