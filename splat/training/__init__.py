"""Static-scene 3DGS training: config, the Trainer loop, strategies, losses, outputs.

    from splat.training import TrainConfig, preset, Trainer, train
    run_dir = train(preset("fast", data="scene/"))
"""

from __future__ import annotations

from pathlib import Path

from splat.training.config import (DefaultStrategyConfig, LossConfig, MCMCStrategyConfig, OptimConfig,
                                   TrainConfig, preset)

__all__ = ["TrainConfig", "OptimConfig", "LossConfig", "DefaultStrategyConfig", "MCMCStrategyConfig",
           "preset", "train", "Trainer"]


def train(config) -> Path:
    """Run a training to completion; returns the run directory."""
    from splat.training.loop import Trainer

    if isinstance(config, (str, Path)):
        config = TrainConfig(data=str(config))
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    return Trainer(config).train()


def __getattr__(name: str):
    if name == "Trainer":
        from splat.training.loop import Trainer

        return Trainer
    raise AttributeError(name)
