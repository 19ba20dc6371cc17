"""Atomic, resumable checkpoints in the layout `splat.formats.checkpoint` reads.

`splats` holds the export-ready parameters (gsplat names, log scales, logit
opacities; with the 3D mip filter baked in). Everything else a resumed run needs
to continue bit-for-bit sits beside it: the raw trainable parameters, optimizer
and strategy state, RNG states, the data order, the curves so far. Only tensors,
primitives, lists and dicts, so `torch.load(weights_only=True)` reads it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from splat.atomic import atomic_write
from splat.errors import SplatError

if TYPE_CHECKING:
    from splat.training.loop import Trainer

CKPT_DIR = "ckpts"


def ckpt_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"ckpt_{step:06d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary files are ignored)."""
    d = Path(run_dir) / CKPT_DIR
    found = [p for p in d.glob("ckpt_*.pt") if re.fullmatch(r"ckpt_\d+\.pt", p.name)]
    return sorted(found, key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))


def state_of(trainer: "Trainer") -> dict[str, Any]:
    snap = trainer.snapshot()
    raw = {k: v.detach().cpu().clone() for k, v in trainer.params.items()}
    ckpt: dict[str, Any] = {
        "splats": {k: v.contiguous() for k, v in snap.tensors().items()},
        "antialiased": bool(snap.antialiased),
        "normalization": snap.normalization,
        "step": trainer.step,
        "config": trainer.config.to_dict(),
        "train_splats": raw,
        "optimizers": {k: _cpu(o.state_dict()) for k, o in trainer.optimizers.items()},
        "aux_optimizers": {k: _cpu(o.state_dict()) for k, o in trainer.aux_optimizers.items()},
        "modules": {k: _cpu(m.state_dict()) for k, m in trainer.modules.items()},
        "strategy": _cpu(trainer.strategy.state_dict()),
        "filter_3d": None if trainer.filter_3d is None else trainer.filter_3d.cpu(),
        "rng": {
            "trainer": trainer.generator.get_state(),
            "torch": torch.get_rng_state(),
            "data": trainer.images.state_dict(),
        },
        "history": trainer.history,
        "evals": trainer.evals,
        "elapsed": trainer.elapsed,
        "initial_eval": trainer.initial_eval,
    }
    if torch.cuda.is_available() and trainer.device.type == "cuda":
        ckpt["rng"]["cuda"] = torch.cuda.get_rng_state(trainer.device)
    return ckpt


def _cpu(x):
    if torch.is_tensor(x):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu(v) for v in x)
    return x


def save(trainer: "Trainer") -> Path:
    """Write `ckpts/ckpt_<step>.pt` atomically; keep the newest `keep_ckpts`."""
    path = ckpt_path(trainer.run_dir, trainer.step)
    state = state_of(trainer)
    try:
        with atomic_write(path) as f:
            torch.save(state, f)
    except OSError as err:
        raise SplatError(f"cannot write checkpoint {path}: {err.strerror or err}") from None
    keep = max(1, trainer.config.keep_ckpts)
    for old in list_checkpoints(trainer.run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SplatError(f"{path}: cannot read checkpoint ({type(err).__name__}: {str(err)[:200]})") from None


def restore(trainer: "Trainer", ckpt: dict[str, Any]) -> None:
    """Put a trainer (built from the same config and data) into the checkpoint's state."""
    dev = trainer.device
    raw = ckpt.get("train_splats") or ckpt["splats"]
    trainer.set_params({k: v.to(dev) for k, v in raw.items()})
    for k, sd in ckpt["optimizers"].items():
        trainer.optimizers[k].load_state_dict(sd)
    for k, sd in ckpt.get("modules", {}).items():
        trainer.modules[k].load_state_dict(sd)
    for k, sd in ckpt.get("aux_optimizers", {}).items():
        trainer.aux_optimizers[k].load_state_dict(sd)
    trainer.strategy.load_state_dict({k: (v.to(dev) if torch.is_tensor(v) else v)
                                      for k, v in ckpt.get("strategy", {}).items()})
    f3d = ckpt.get("filter_3d")
    trainer.filter_3d = None if f3d is None else f3d.to(dev)
    rng = ckpt["rng"]
    trainer.generator.set_state(rng["trainer"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and dev.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], dev)
    trainer.images.load_state_dict(rng["data"])
    trainer.step = int(ckpt["step"])
    trainer.history = list(ckpt.get("history", []))
    trainer.evals = list(ckpt.get("evals", []))
    trainer.elapsed = float(ckpt.get("elapsed", 0.0))
    trainer.initial_eval = ckpt.get("initial_eval")
