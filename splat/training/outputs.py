"""Run directory layout: outputs/<scene>/<method>/<timestamp>/ with
config.yml, ckpts/, metrics.json, curves.png, renders/test/, scene.ply."""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

from splat.atomic import atomic_write
from splat.errors import SplatError


def new_run_dir(config) -> Path:
    scene = Path(config.data).resolve().name or "scene"
    name = config.run_name or datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    path = Path(config.output_dir) / scene / config.method / name
    base, k = path, 1
    while path.exists() and any(path.iterdir()):  # never mix two runs
        path = base.with_name(f"{base.name}_{k}")
        k += 1
    ensure_writable(path)
    return path


def ensure_writable(path: Path) -> None:
    """Create `path` and prove it takes a file; SplatError otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_test"
        with open(probe, "wb") as f:
            f.write(b"ok")
        probe.unlink()
    except OSError as err:
        raise SplatError(f"cannot write to the output folder {path}: {err.strerror or err} "
                         f"(choose another with --output-dir)") from None


def write_config(run_dir: Path, config) -> None:
    import yaml

    with atomic_write(run_dir / "config.yml", "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)


def read_config(run_dir: Path):
    import yaml

    from splat.training.config import TrainConfig

    path = Path(run_dir) / "config.yml"
    if not path.is_file():
        raise SplatError(f"{run_dir}: not a training run (no config.yml)")
    with open(path) as f:
        return TrainConfig.from_dict(yaml.safe_load(f))


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    with atomic_write(run_dir / "metrics.json", "w") as f:
        json.dump(_clean(metrics), f, indent=1)


def write_plots(run_dir: Path, history: list[dict[str, float]], evals: list[dict[str, Any]]) -> Path | None:
    """curves.png: loss, train PSNR (with test PSNR at eval steps) and Gaussian count per step."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(steps, [h["loss"] for h in history], lw=0.8)
    axes[0].set(title="loss", xlabel="step", yscale="log")
    axes[1].plot(steps, [h["psnr"] for h in history], lw=0.8, label="train (batch)")
    if evals:
        axes[1].plot([e["step"] for e in evals], [e["psnr"] for e in evals], "o-", label="test")
    axes[1].set(title="PSNR (dB)", xlabel="step")
    axes[1].legend()
    axes[2].plot(steps, [h["num_gaussians"] for h in history], lw=0.8)
    axes[2].set(title="Gaussians", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = run_dir / "curves.png"
    tmp = run_dir / ".curves.png.tmp"
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
