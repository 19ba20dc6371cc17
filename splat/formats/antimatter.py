"""antimatter15 `.splat`: 32-byte rows, no header, SH degree 0 only.

row: position f32 x3 | scale f32 x3 (linear) | RGBA u8 x4 (color = 0.5 + SH_C0 * dc,
alpha = opacity) | rotation u8 x4 (wxyz, q * 128 + 128). Higher SH bands are dropped.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from splat.atomic import atomic_write
from splat.formats.common import SH_C0, bad_file, logit, read_bytes, unorm8
from splat.scene import GaussianScene

ROW = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def read_splat(path: str | os.PathLike) -> GaussianScene:
    data = read_bytes(path)
    if len(data) % ROW.itemsize:
        raise bad_file(path, f"truncated or not a .splat file: {len(data)} bytes is not a multiple of 32")
    rows = np.frombuffer(data, dtype=ROW)
    if not np.isfinite(rows["position"]).all() or not (rows["scale"] >= 0).all():
        raise bad_file(path, "corrupt .splat: non-finite positions or negative scales")
    rgba = rows["rgba"]
    dc = (rgba[:, :3].astype(np.float32) / 255.0 - 0.5) / SH_C0
    quats = (rows["rot"].astype(np.float32) - 128.0) / 128.0
    n = len(rows)
    return GaussianScene(
        means=torch.from_numpy(rows["position"].copy()),
        quats=torch.from_numpy(quats),
        log_scales=torch.from_numpy(np.log(np.maximum(rows["scale"], 1e-30))),
        opacity_logits=torch.from_numpy(logit(unorm8(rgba[:, 3])).astype(np.float32)),
        sh0=torch.from_numpy(dc[:, None, :]),
        shN=torch.zeros(n, 0, 3),
    )


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def encode_splat(scene: GaussianScene) -> bytes:
    """Rows in scene order (viewers sort by depth themselves)."""
    s = scene.detach().to("cpu")
    rows = np.empty(len(s), dtype=ROW)
    rows["position"] = s.means.float().numpy()
    rows["scale"] = s.scales.float().numpy()
    color = 0.5 + SH_C0 * s.sh0[:, 0].double().numpy()
    rows["rgba"][:, :3] = to_u8(color * 255.0)
    rows["rgba"][:, 3] = to_u8(s.opacities.double().numpy() * 255.0)
    rows["rot"] = to_u8(s.unit_quats.double().numpy() * 128.0 + 128.0)
    return rows.tobytes()


def write_splat(scene: GaussianScene, path: str | os.PathLike) -> None:
    data = encode_splat(scene)
    with atomic_write(path, "wb") as f:
        f.write(data)
