"""Training outputs: torch checkpoints and run directories.

A checkpoint is a dict saved with `torch.save` whose "splats" entry maps gsplat-style
names to tensors: means [N,3], quats [N,4] wxyz, scales [N,3] (log), opacities [N]
(logits), sh0 [N,1,3] and shN [N,K-1,3] (or colors [N,K,3]). Optional top-level
entries: "antialiased" (bool) and "normalization" ([4,4], original frame -> scene frame).
Other [N, ...] tensors in "splats" are kept as extras.

A run directory holds ckpts/*.pt (the highest step wins) and/or a scene.ply.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from splat.formats.common import bad_file
from splat.scene import GaussianScene

REQUIRED = ("means", "quats", "scales", "opacities")
PARAMS = set(REQUIRED) | {"sh0", "shN", "colors"}
SCENE_FILES = ("scene.ply", "point_cloud.ply")


def read_checkpoint(path: str | os.PathLike) -> GaussianScene:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise bad_file(path, f"cannot read torch checkpoint ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(ckpt, dict):
        raise bad_file(path, f"checkpoint holds a {type(ckpt).__name__}, expected a dict with 'splats'")
    splats = ckpt.get("splats", ckpt)
    if not isinstance(splats, dict):
        raise bad_file(path, "checkpoint 'splats' is not a dict of tensors")
    missing = [k for k in REQUIRED if k not in splats]
    if missing or not ("sh0" in splats or "colors" in splats):
        raise bad_file(path, f"checkpoint 'splats' is missing {(missing or ['sh0'])[0]!r} (found {sorted(splats)})")
    n = splats["means"].shape[0]
    scene = GaussianScene.from_tensors(
        splats["means"].detach().float(),
        splats["quats"].detach().float(),
        splats["scales"].detach().float(),
        splats["opacities"].detach().float().reshape(n),
        colors=splats["colors"].detach().float() if "colors" in splats else None,
        sh0=splats["sh0"].detach().float() if "sh0" in splats else None,
        shN=splats["shN"].detach().float() if "shN" in splats else None,
        antialiased=bool(ckpt.get("antialiased", False)),
        normalization=ckpt.get("normalization"),
    )
    scene.extras = {k: v.detach() for k, v in splats.items()
                    if k not in PARAMS and torch.is_tensor(v) and v.shape[:1] == (n,)}  # fmt: skip
    return scene


def _step(path: Path) -> tuple[int, float]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.stat().st_mtime)


def find_in_run_dir(run: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run directory, else its exported scene ply; None if neither."""
    run = Path(run)
    ckpts = sorted((run / "ckpts").glob("*.pt"), key=_step)
    if ckpts:
        return ckpts[-1]
    for name in SCENE_FILES:
        if (run / name).is_file():
            return run / name
    return None
