"""The standard 3DGS binary ply (Kerbl et al. 2023 layout, as written by most tools).

vertex properties: x y z, nx ny nz (zeros), f_dc_0..2, f_rest_* (channel-major: all
red bands, then green, then blue), opacity (logit), scale_0..2 (log), rot_0..3 (wxyz).
Other vertex properties are kept in `GaussianScene.extras` and written back.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from splat.atomic import atomic_write
from splat.formats.common import bad_file, sh_degree_for
from splat.formats.ply_io import PlyFile, read_ply, structured, write_ply
from splat.scene import GaussianScene

REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
IGNORED = {"nx", "ny", "nz"}  # always zero in 3DGS output
F_REST = re.compile(r"f_rest_(\d+)$")


def _column(vertex: np.ndarray, *names: str) -> np.ndarray:
    return np.stack([vertex[n].astype(np.float32) for n in names], axis=-1)


def scene_from_ply(ply: PlyFile, path: str | os.PathLike) -> GaussianScene:
    if "vertex" not in ply.elements:
        raise bad_file(path, "PLY has no 'vertex' element")
    vertex = ply.elements["vertex"]
    names = set(vertex.dtype.names)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        hint = " (a plain point cloud, not Gaussian splats?)" if {"x", "y", "z"} <= names else ""
        raise bad_file(path, f"not a 3DGS ply: missing vertex property {missing[0]}{hint}")
    rest = sorted((int(m.group(1)) for n in names if (m := F_REST.match(n))))
    if rest != list(range(len(rest))) or len(rest) % 3:
        raise bad_file(path, f"f_rest_* properties are not 0..3k-1 (found {len(rest)})")
    per_channel = len(rest) // 3
    sh_degree_for(per_channel + 1, path)
    n = len(vertex)
    shN = np.zeros((n, 0, 3), np.float32)
    if rest:
        shN = _column(vertex, *(f"f_rest_{i}" for i in rest)).reshape(n, 3, per_channel).transpose(0, 2, 1)
    known = set(REQUIRED) | IGNORED | {f"f_rest_{i}" for i in rest}
    extras = {k: torch.from_numpy(vertex[k].astype(vertex.dtype[k].newbyteorder("="))) for k in vertex.dtype.names
              if k not in known}  # fmt: skip
    scene = GaussianScene(
        means=torch.from_numpy(_column(vertex, "x", "y", "z")),
        quats=torch.from_numpy(_column(vertex, "rot_0", "rot_1", "rot_2", "rot_3")),
        log_scales=torch.from_numpy(_column(vertex, "scale_0", "scale_1", "scale_2")),
        opacity_logits=torch.from_numpy(vertex["opacity"].astype(np.float32)),
        sh0=torch.from_numpy(_column(vertex, "f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]),
        shN=torch.from_numpy(np.ascontiguousarray(shN)),
        extras=extras,
    )
    return scene


def read_3dgs_ply(path: str | os.PathLike) -> GaussianScene:
    return scene_from_ply(read_ply(path), path)


def ply_columns(scene: GaussianScene) -> dict[str, np.ndarray]:
    """The scene as named float32 columns in the standard 3DGS order."""
    def np32(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float32).numpy()

    n = len(scene)
    cols: dict[str, np.ndarray] = {}
    for i, axis in enumerate("xyz"):
        cols[axis] = np32(scene.means[:, i])
    for axis in ("nx", "ny", "nz"):
        cols[axis] = np.zeros(n, np.float32)
    for i in range(3):
        cols[f"f_dc_{i}"] = np32(scene.sh0[:, 0, i])
    rest = np32(scene.shN).transpose(0, 2, 1).reshape(n, -1)  # channel-major
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    cols["opacity"] = np32(scene.opacity_logits)
    for i in range(3):
        cols[f"scale_{i}"] = np32(scene.log_scales[:, i])
    for i in range(4):
        cols[f"rot_{i}"] = np32(scene.quats[:, i])
    for name, t in scene.extras.items():
        if t.dim() == 1 and name not in cols:  # 1-D extras round-trip; others have no ply form
            cols[name] = t.detach().cpu().numpy()
    return cols


def write_3dgs_ply(scene: GaussianScene, path: str | os.PathLike) -> None:
    with atomic_write(path, "wb") as f:
        write_ply(f, {"vertex": structured(ply_columns(scene))})
