"""Training images in memory and a resumable, seeded shuffling sampler."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


class TrainImages:
    """Decodes each train view once (uint8, on the training device) and hands them out
    in a per-epoch random order drawn from its own generator, so a resumed run sees
    the same sequence."""

    def __init__(self, data, indices: list[int], device: torch.device, seed: int):
        self.data = data
        self.indices = list(indices)
        if not self.indices:
            from splat.errors import SplatError

            raise SplatError(f"{data.root}: no training views")
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self._cache: dict[int, Tensor] = {}
        self.perm: Tensor | None = None
        self.pos = 0
        self.has_alpha = data.store.rgb(self.indices[0]).shape[-1] == 4

    def pixels(self, i: int) -> Tensor:
        """View i as uint8 [H, W, 3 or 4] on the device (decoded once)."""
        if i not in self._cache:
            arr = np.ascontiguousarray(self.data.store.rgb(i))
            self._cache[i] = torch.from_numpy(arr.copy()).to(self.device)
        return self._cache[i]

    def next_index(self) -> int:
        if self.perm is None or self.pos >= len(self.perm):
            self.perm = torch.randperm(len(self.indices), generator=self.generator)
            self.pos = 0
        k = int(self.perm[self.pos])
        self.pos += 1
        return self.indices[k]

    def get(self, i: int, background: Tensor) -> dict[str, Any]:
        """image [1, H, W, 3] float on `background` [3], alpha [1, H, W, 1] or None, camera."""
        px = self.pixels(i).float() / 255.0
        rgb, alpha = px[..., :3], None
        if px.shape[-1] == 4:
            alpha = px[..., 3:]
            rgb = rgb * alpha + background * (1.0 - alpha)
        cams = self.data.cameras
        mask = self.data.mask(i)
        return {
            "image": rgb[None], "alpha": None if alpha is None else alpha[None], "index": i,
            "viewmat": cams.viewmats[i][None].to(self.device), "K": cams.Ks[i][None].to(self.device),
            "mask": None if mask is None else mask[None].to(self.device),
        }  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = state["perm"], int(state["pos"])
