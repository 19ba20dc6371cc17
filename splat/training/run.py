"""Open a finished (or running) training run: its config, data and scene."""

from __future__ import annotations

from pathlib import Path

import torch

from splat.errors import SplatError


def open_run(run_dir: str | Path, device: str = "auto", data_root: str | None = None):
    """(config, SceneData, GaussianScene in the data's normalized frame) of a run directory."""
    from splat.formats.checkpoint import find_in_run_dir
    from splat.scene import GaussianScene
    from splat.training.loop import load_data
    from splat.training.outputs import read_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SplatError(f"{run_dir}: not a run directory")
    config = read_config(run_dir)
    if data_root is not None:
        config.data = str(data_root)
    config.device = device
    if find_in_run_dir(run_dir) is None:
        raise SplatError(f"{run_dir}: no checkpoint or scene.ply yet")
    import splat

    scene: GaussianScene = splat.load(run_dir)
    data = load_data(config)
    if scene.normalization is None:  # a scene.ply is in the original frame
        T = torch.tensor(data.normalization.transform, dtype=torch.float64)
        if not torch.allclose(T, torch.eye(4, dtype=torch.float64)):
            scene = scene.transformed(T)
    return config, data, scene
