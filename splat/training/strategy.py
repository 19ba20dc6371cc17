"""The strategy interface: how the set of Gaussians changes during training.

gsplat-style hooks around backward. A strategy owns its running state (gradient
accumulators ...) and exposes it through `state_dict` / `load_state_dict` so a
resumed run continues exactly. It may also contribute loss terms (MCMC's
regularizers).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Strategy(Protocol):
    name: str

    def step_pre_backward(self, params: torch.nn.ParameterDict, optimizers: dict, step: int, info: dict) -> None:
        """Before backward (e.g. ask for the 2D means' gradient)."""

    def step_post_backward(self, params: torch.nn.ParameterDict, optimizers: dict, step: int, info: dict) -> bool:
        """After the optimizer step; returns True when the set of Gaussians changed."""

    def loss_terms(self) -> list: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def make_strategy(config, scene_scale: float, generator: torch.Generator):
    """The strategy named by `config.strategy` with its sub-config."""
    if config.strategy == "default":
        from splat.training.strategy_default import DefaultStrategy

        return DefaultStrategy(config.default, scene_scale, generator)
    if config.strategy == "mcmc":
        from splat.training.strategy_mcmc import MCMCStrategy

        return MCMCStrategy(config.mcmc, generator)
    raise ValueError(f"unknown strategy {config.strategy!r} (default, mcmc)")
