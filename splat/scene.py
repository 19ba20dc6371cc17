"""GaussianScene: a set of 3D Gaussians as tensors, plus load/save/render helpers.

Parameters are stored raw, the way 3DGS plys and gsplat trainers keep them:
log-scales and opacity logits. `scales` and `opacities` give the activated forms
(what the rasterizer takes). World frame: 3DGS / COLMAP convention (the ply's frame).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814


@dataclass
class Camera:
    """A pinhole camera for `GaussianScene.render`."""

    viewmat: Tensor  # [4, 4] world-to-camera, OpenCV (x right, y down, z forward)
    K: Tensor  # [3, 3] intrinsics in pixels
    width: int
    height: int


@dataclass
class GaussianScene:
    means: Tensor  # [N, 3] centers
    quats: Tensor  # [N, 4] rotations, wxyz, not necessarily unit
    log_scales: Tensor  # [N, 3] natural log of the per-axis standard deviations
    opacity_logits: Tensor  # [N] inverse sigmoid of the opacity
    sh0: Tensor  # [N, 1, 3] SH degree-0 coefficients ("f_dc")
    shN: Tensor  # [N, K - 1, 3] higher SH bands, K = (sh_degree + 1)^2; [N, 0, 3] for degree 0
    antialiased: bool = False  # trained with mip-splatting style 2D filter compensation
    extras: dict[str, Tensor] = field(default_factory=dict)  # name -> [N, ...] other per-splat data kept from a file
    # [4, 4] similarity mapping the dataset's original frame to this scene's frame
    # (scale * rotation, translation); None when the scene is in its original frame.
    normalization: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        shapes = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "log_scales": (self.log_scales, (n, 3)),
            "opacity_logits": (self.opacity_logits, (n,)),
            "sh0": (self.sh0, (n, 1, 3)),
        }
        for name, (t, shape) in shapes.items():
            if tuple(t.shape) != shape:
                raise ValueError(f"GaussianScene.{name} has shape {tuple(t.shape)}, expected {shape}")
        if self.shN.dim() != 3 or self.shN.shape[0] != n or self.shN.shape[2] != 3:
            raise ValueError(f"GaussianScene.shN has shape {tuple(self.shN.shape)}, expected [{n}, K-1, 3]")
        k = self.shN.shape[1] + 1
        if math.isqrt(k) ** 2 != k:
            raise ValueError(f"GaussianScene.shN holds {k - 1} bands; K = {k} is not a square")
        for name, t in self.extras.items():
            if t.shape[:1] != (n,):
                raise ValueError(f"GaussianScene.extras[{name!r}] has {t.shape[:1]} rows, expected {n}")

    # --- construction -----------------------------------------------------------------

    @classmethod
    def from_tensors(
        cls,
        means: Tensor,  # [N, 3]
        quats: Tensor,  # [N, 4] wxyz
        scales: Tensor,  # [N, 3] log-scales, or linear with activated=True
        opacities: Tensor,  # [N] logits, or in (0, 1) with activated=True
        colors: Tensor | None = None,  # [N, K, 3] SH coefficients or [N, 3] RGB in [0, 1]
        *,
        sh0: Tensor | None = None,  # [N, 1, 3] (instead of colors)
        shN: Tensor | None = None,  # [N, K - 1, 3]
        activated: bool = False,
        antialiased: bool = False,
        normalization: Tensor | None = None,
    ) -> GaussianScene:
        """Build a scene from gsplat-style tensors (`activated=False`: raw params, as in a
        gsplat `splats` dict) or rasterizer-style ones (`activated=True`)."""
        n = means.shape[0]
        if colors is not None:
            if colors.dim() == 2:  # plain RGB -> SH DC
                colors = ((colors - 0.5) / SH_C0)[:, None, :]
            sh0, shN = colors[:, :1], colors[:, 1:]
        if sh0 is None:
            sh0 = torch.zeros(n, 1, 3, dtype=means.dtype, device=means.device)
        if shN is None:
            shN = sh0.new_zeros(n, 0, 3)
        if activated:
            scales, opacities = torch.log(scales), torch.logit(opacities, eps=1e-7)
        return cls(means, quats, scales, opacities.reshape(n), sh0, shN,
                   antialiased=antialiased, normalization=normalization)  # fmt: skip

    # --- activated views ------------------------------------------------------------------

    @property
    def scales(self) -> Tensor:  # [N, 3] linear standard deviations
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Tensor:  # [N] in (0, 1)
        return torch.sigmoid(self.opacity_logits)

    @property
    def unit_quats(self) -> Tensor:  # [N, 4] wxyz, normalized
        return torch.nn.functional.normalize(self.quats, dim=-1)

    @property
    def sh(self) -> Tensor:  # [N, K, 3] all SH coefficients
        return torch.cat([self.sh0, self.shN], dim=1)

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.shN.shape[1] + 1) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    def __len__(self) -> int:
        return self.means.shape[0]

    def tensors(self) -> dict[str, Tensor]:
        """The per-splat parameters, gsplat `splats` naming (raw params)."""
        return {"means": self.means, "quats": self.quats, "scales": self.log_scales,
                "opacities": self.opacity_logits, "sh0": self.sh0, "shN": self.shN}  # fmt: skip

    @property
    def num_bytes(self) -> int:
        """Bytes held by the per-splat tensors (parameters and extras)."""
        ts = list(self.tensors().values()) + list(self.extras.values())
        return sum(t.numel() * t.element_size() for t in ts)

    def __repr__(self) -> str:
        extra = f", extras={sorted(self.extras)}" if self.extras else ""
        return (f"GaussianScene({len(self)} splats, sh_degree={self.sh_degree}, "
                f"antialiased={self.antialiased}, device={self.device}{extra})")  # fmt: skip

    # --- per-splat operations -------------------------------------------------------------

    def _map(self, fn) -> GaussianScene:
        per_splat = {f.name: fn(getattr(self, f.name)) for f in fields(self)
                     if f.name not in ("antialiased", "extras", "normalization")}  # fmt: skip
        extras = {k: fn(v) for k, v in self.extras.items()}
        return replace(self, **per_splat, extras=extras)

    def subset(self, mask: Tensor) -> GaussianScene:
        """The splats selected by a boolean mask [N] or an index tensor."""
        mask = mask.to(self.device)
        return self._map(lambda t: t[mask])

    def to(self, device: torch.device | str) -> GaussianScene:
        scene = self._map(lambda t: t.to(device))
        if scene.normalization is not None:
            scene = replace(scene, normalization=scene.normalization.to(device))
        return scene

    def detach(self) -> GaussianScene:
        return self._map(lambda t: t.detach())

    def transformed(self, matrix: Tensor) -> GaussianScene:
        """Apply a 4x4 similarity (uniform scale * rotation, translation) to every splat.

        Centers, orientations, scales and view-dependent color (SH bands rotate too)
        all move; `normalization` is updated so the original frame is still known.
        """
        from splat.formats.frames import apply_similarity

        return apply_similarity(self, matrix)

    def in_original_frame(self) -> GaussianScene:
        """Undo `normalization` (if any): the scene in the dataset's original frame."""
        if self.normalization is None:
            return self
        scene = self.transformed(torch.linalg.inv(self.normalization.to(torch.float64)))
        return replace(scene, normalization=None)

    # --- I/O and rendering ----------------------------------------------------------------

    def save(self, path: str | os.PathLike, **options: Any) -> None:
        """Write the scene; the format follows the extension (.ply, .compressed.ply, .splat, .spz).

        Options go to the writer (e.g. `version=2` for .spz). Writes are atomic.
        """
        from splat.formats import save

        save(self, path, **options)

    def render(
        self,
        camera_or_viewmat: Camera | Tensor,
        K: Tensor | None = None,
        width: int | None = None,
        height: int | None = None,
        **rasterize_kwargs: Any,
    ):
        """Render with `splat.rasterizer.rasterize`; returns its (colors, alphas, meta).

        Pass a `Camera`, or a viewmat [4, 4] / [C, 4, 4] with K [3, 3] / [C, 3, 3],
        width and height. Uses all SH bands and the scene's antialiased flag unless
        overridden in `rasterize_kwargs`.
        """
        from splat.rasterizer import rasterize

        if isinstance(camera_or_viewmat, Camera):
            cam = camera_or_viewmat
            viewmat, K, width, height = cam.viewmat, cam.K, cam.width, cam.height
        else:
            viewmat = camera_or_viewmat
            if K is None or width is None or height is None:
                raise TypeError("render(viewmat, K, width, height): pass all four, or a Camera")
        viewmats = viewmat[None] if viewmat.dim() == 2 else viewmat
        Ks = K[None] if K.dim() == 2 else K
        rasterize_kwargs.setdefault("sh_degree", self.sh_degree)
        rasterize_kwargs.setdefault("antialiased", self.antialiased)
        dev, dtype = self.device, self.means.dtype
        return rasterize(
            self.means, self.quats, self.scales, self.opacities, self.sh,
            viewmats.to(dev, dtype), Ks.to(dev, dtype), int(width), int(height),
            **rasterize_kwargs,
        )  # fmt: skip


def load(path: str | os.PathLike) -> GaussianScene:
    """Read a scene: .ply (3DGS or PlayCanvas compressed), .splat, .spz, .sog, a SOG folder,
    a torch checkpoint or a run directory. Raises SplatError on unknown or corrupt input."""
    from splat.formats import load as load_any

    return load_any(path)
