"""Every real file in the shared data set opens with the right size, SH degree and sane values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import splat
from splat.shared_data import shared_data_dir

DATA = shared_data_dir()
SPLATS = DATA / "splats"

# name -> (splats, SH degree, antialiased)
REAL_FILES = {
    "fruit_drops_minimal.ply": (4721, 3, False),
    "biker_v4.spz": (152746, 0, False),
    "biker.compressed.ply": (152746, 0, False),
    "fourth_st_v2.spz": (131199, 3, True),
    "wave_0001.sog": (4225, 0, False),
    "playbot_sog": (1873, 2, False),
}


def real(name: str) -> Path:
    path = SPLATS / name
    if not path.exists():
        pytest.skip(f"real data not found: {path} (set SPLAT_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="module")
def biker():
    return splat.load(real("biker_v4.spz")), splat.load(real("biker.compressed.ply"))


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_file_opens_with_sane_values(name):
    count, degree, antialiased = REAL_FILES[name]
    scene = splat.load(real(name))
    assert len(scene) == count
    assert scene.sh_degree == degree and scene.shN.shape == (count, (degree + 1) ** 2 - 1, 3)
    assert scene.antialiased == antialiased
    for key, t in scene.tensors().items():
        assert torch.isfinite(t).all(), key
    norms = scene.quats.norm(dim=-1)
    assert (norms > 0).all()
    assert torch.allclose(scene.unit_quats.norm(dim=-1), torch.ones(count), atol=1e-5)
    assert (scene.scales > 0).all() and (scene.scales < 100).all()
    assert ((scene.opacities > 0) & (scene.opacities < 1)).all()
    extent = scene.means.max(0).values - scene.means.min(0).values
    assert (extent > 0.01).all() and (extent < 1e4).all()
    assert scene.sh0.abs().max() < 20


def test_ply_keeps_the_extra_property():
    scene = splat.load(real("fruit_drops_minimal.ply"))
    assert list(scene.extras) == ["transform"] and scene.extras["transform"].shape == (4721,)


def test_spz_and_compressed_ply_of_one_scene_agree(biker):
    spz, ply = biker
    # Both files list the splats in the same order. spz positions are 24-bit fixed point
    # with 12 fractional bits (error <= 0.5/4096); agreement also checks the y/z flip
    # from spz's RUB frame.
    assert (spz.means - ply.means).abs().max() < 2e-4
    dots = (spz.unit_quats * ply.unit_quats).sum(-1).abs()
    assert dots.min() > 0.999
    # spz clamps log-scales to [-10, 5.94]; elsewhere they agree to its 1/32 step
    inside = ply.log_scales > -10
    assert (spz.log_scales - ply.log_scales)[inside].abs().max() <= 0.5 / 16 + 1e-4
    assert (spz.opacities - ply.opacities).abs().max() <= 1 / 255
    assert (spz.sh0 - ply.sh0).abs().max() <= 0.5 / (0.15 * 255) + 1e-3


def test_sog_values_match_meta_bounds():
    import json

    meta = json.loads((real("playbot_sog") / "meta.json").read_text())
    scene = splat.load(real("playbot_sog"))
    # positions are stored as sign(x) log(1 + |x|) inside the meta bounds
    logged = torch.sign(scene.means) * torch.log1p(scene.means.abs())
    assert torch.allclose(logged.min(0).values, torch.tensor(meta["means"]["mins"], dtype=torch.float32), atol=1e-4)
    assert torch.allclose(logged.max(0).values, torch.tensor(meta["means"]["maxs"], dtype=torch.float32), atol=1e-4)
    book = torch.tensor(meta["scales"]["codebook"])
    assert torch.isin(scene.log_scales, book).all()
    assert torch.isin(scene.shN, torch.tensor(meta["shN"]["codebook"])).all()
    # the same SOG loads through its meta.json path too
    assert torch.equal(splat.load(real("playbot_sog") / "meta.json").means, scene.means)


def test_real_files_survive_our_writers(tmp_path):
    """A real SH-3 scene through .ply (exact) and .spz (bounded) and back."""
    scene = splat.load(real("fourth_st_v2.spz")).subset(torch.arange(0, 131199, 50))
    scene.save(tmp_path / "s.ply")
    again = splat.load(tmp_path / "s.ply")
    for key, t in scene.tensors().items():
        assert torch.equal(again.tensors()[key], t), key
    scene.save(tmp_path / "s.spz", version=2)
    again = splat.load(tmp_path / "s.spz")
    assert again.antialiased and again.sh_degree == 3
    # decoded spz values are re-encoded to the same codes, except rotations (re-rounded)
    for key in ("means", "log_scales", "opacity_logits", "sh0", "shN"):
        torch.testing.assert_close(getattr(again, key), getattr(scene, key), atol=1e-5, rtol=0, msg=key)
