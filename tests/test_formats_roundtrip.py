"""Writers: exact .ply round trip, .splat/.spz within their derived quantization error,
Open3D reading our .ply, and `splat export` through the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import splat
from splat.formats.common import SH_C0
from splat.scene import GaussianScene


def random_scene(n: int = 500, degree: int = 3, seed: int = 0) -> GaussianScene:
    """Values inside every format's representable range, so only rounding differs."""
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return GaussianScene(
        means=(torch.rand(n, 3, generator=g) - 0.5) * 20.0,
        quats=torch.randn(n, 4, generator=g) * torch.rand(n, 1, generator=g) * 3,  # not unit
        log_scales=torch.rand(n, 3, generator=g) * 12.0 - 9.5,  # spz: [-10, 5.9]
        opacity_logits=torch.randn(n, generator=g) * 3.0,
        sh0=(torch.rand(n, 1, 3, generator=g) - 0.5) * 3.2,  # colors stay inside [0, 1]
        shN=(torch.rand(n, k - 1, 3, generator=g) - 0.5) * 1.8,  # spz SH: inside [-0.9, 0.9]
    )


def aligned_unit_quats(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit quaternions with b's sign flipped to match a (q and -q are one rotation)."""
    a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
    return a, b * torch.sign((a * b).sum(-1, keepdim=True))


def test_ply_round_trip_is_exact(tmp_path):
    scene = random_scene()
    scene.extras = {"transform": torch.arange(len(scene), dtype=torch.float32)}
    scene.save(tmp_path / "a.ply")
    back = splat.load(tmp_path / "a.ply")
    for name, t in scene.tensors().items():
        assert torch.equal(back.tensors()[name], t), name
    assert torch.equal(back.extras["transform"], scene.extras["transform"])
    assert back.sh_degree == 3


def test_splat_round_trip_within_8bit_quantization(tmp_path):
    scene = random_scene()
    scene.save(tmp_path / "a.splat")
    back = splat.load(tmp_path / "a.splat")
    assert (tmp_path / "a.splat").stat().st_size == 32 * len(scene)
    assert back.sh_degree == 0
    assert torch.equal(back.means, scene.means)  # float32 as stored
    torch.testing.assert_close(back.log_scales, scene.log_scales, atol=1e-5, rtol=0)  # exp then log
    # colors and alpha are u8: half a step, 0.5/255; in SH units divide by SH_C0
    assert (back.sh0 - scene.sh0).abs().max() <= 0.5 / 255 / SH_C0 + 1e-6
    assert (back.opacities - scene.opacities).abs().max() <= 0.5 / 255 + 1e-6
    # quats: u8 of q*128+128, error <= 1/128 per component (255 caps 1.0); renormalizing
    # at most doubles the Euclidean error: |e| <= 2/128 -> <= 4/128 per component
    a, b = aligned_unit_quats(scene.quats, back.quats)
    assert (a - b).abs().max() <= 4 / 128


@pytest.mark.parametrize("version", [2, 3, 4])
def test_spz_round_trip_within_quantization(tmp_path, version):
    scene = random_scene()
    scene.antialiased = True
    scene.save(tmp_path / "a.spz", version=version)
    back = splat.load(tmp_path / "a.spz")
    raw = (tmp_path / "a.spz").read_bytes()
    assert raw[:4] == b"NGSP" if version == 4 else raw[:2] == b"\x1f\x8b"
    assert back.antialiased and back.sh_degree == 3 and len(back) == len(scene)
    # positions: 24-bit fixed point with 12 fractional bits (|x| <= 10 fits): 0.5 / 4096
    assert (back.means - scene.means).abs().max() <= 0.5 / 4096 + 1e-5
    assert (back.log_scales - scene.log_scales).abs().max() <= 0.5 / 16 + 1e-5  # u8 of (log+10)*16
    assert (back.opacities - scene.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.sh0 - scene.sh0).abs().max() <= 0.5 / (0.15 * 255) + 1e-5  # u8 of dc*0.15*255+127.5
    # SH: round(128 x) then the nearest multiple of the bucket (8 for 5-bit band 1, 16 for 4-bit)
    assert (back.shN[:, :3] - scene.shN[:, :3]).abs().max() <= (0.5 + 4) / 128 + 1e-6
    assert (back.shN[:, 3:] - scene.shN[:, 3:]).abs().max() <= (0.5 + 8) / 128 + 1e-6
    a, b = aligned_unit_quats(scene.quats, back.quats)
    if version == 2:
        # xyz as u8 (error 0.5/127.5 each), w = sqrt(1 - |xyz|^2): its error is at most
        # sqrt(| |xyz|^2 - |xyz'|^2 |) <= sqrt(2 * sqrt(3) * 0.5/127.5 + 3 * (0.5/127.5)^2)
        bound = math.sqrt(2 * math.sqrt(3) * 0.5 / 127.5 + 3 * (0.5 / 127.5) ** 2)
        assert (a - b)[:, 1:].abs().max() <= 0.5 / 127.5 + 1e-6
        assert (a - b)[:, 0].abs().max() <= bound
    else:
        # smallest three: 9-bit magnitudes of components <= 1/sqrt2: error sqrt(1/2)*0.5/511;
        # the largest (>= 1/2) is rebuilt: error <= sum(2|c| e) / (2 * 1/2) <= 2*sqrt(3/2)*e
        e = math.sqrt(0.5) * 0.5 / 511
        assert (a - b).abs().max() <= 2 * math.sqrt(1.5) * e + 2e-6


def test_spz_versions_agree_and_quantization_is_stable(tmp_path):
    """Writing the decoded scene again changes nothing but rotations' re-rounding:
    the other codes are fixed points, and v3 and v4 share the same encodings."""
    scene = random_scene(degree=1)
    scene.save(tmp_path / "a.spz", version=3)
    once = splat.load(tmp_path / "a.spz")
    once.save(tmp_path / "b.spz", version=4)
    twice = splat.load(tmp_path / "b.spz")
    for name, t in once.tensors().items():
        if name != "quats":
            torch.testing.assert_close(twice.tensors()[name], t, atol=1e-5, rtol=0, msg=name)
    a, b = aligned_unit_quats(once.quats, twice.quats)
    assert (a - b).abs().max() <= 2 * math.sqrt(1.5) * math.sqrt(0.5) * 0.5 / 511 + 2e-6


def test_open3d_reads_our_ply(tmp_path):
    o3d = pytest.importorskip("open3d", reason="open3d is in the 'test' extra")
    scene = random_scene(n=300)
    scene.save(tmp_path / "a.ply")
    pcd = o3d.t.io.read_point_cloud(str(tmp_path / "a.ply"))
    p = {k: pcd.point[k].numpy() for k in pcd.point}
    np.testing.assert_array_equal(p["positions"], scene.means.numpy())
    np.testing.assert_array_equal(p["f_dc"], scene.sh0[:, 0].numpy())
    np.testing.assert_array_equal(p["f_rest"], scene.shN.numpy())
    np.testing.assert_array_equal(p["opacity"][:, 0], scene.opacity_logits.numpy())
    # Open3D activates scales on read (exp of the stored logs); the rest come back as stored
    np.testing.assert_allclose(p["scale"], scene.scales.numpy(), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(p["rot"], scene.quats.numpy())


def test_cli_export_round_trip(tmp_path, capsys):
    from splat.cli import run

    scene = random_scene(n=200, degree=2)
    scene.save(tmp_path / "in.ply")
    assert run(["export", str(tmp_path / "in.ply"), "--format", "spz", "--out", str(tmp_path / "o.spz")]) == 0
    assert "200 splats" in capsys.readouterr().out
    back = splat.load(tmp_path / "o.spz")
    assert back.sh_degree == 2 and (back.means - scene.means).abs().max() <= 0.5 / 4096 + 1e-5

    assert run(["export", str(tmp_path / "o.spz"), "--format", "splat"]) == 0  # default: beside it
    assert len(splat.load(tmp_path / "o.splat")) == 200

    run_dir = tmp_path / "run"
    (run_dir / "ckpts").mkdir(parents=True)
    torch.save({"step": 7, "splats": scene.tensors()}, run_dir / "ckpts" / "ckpt_7.pt")
    assert run(["export", str(run_dir)]) == 0
    exported = splat.load(run_dir / "export" / "scene.ply")
    for name, t in scene.tensors().items():
        assert torch.equal(exported.tensors()[name], t), name


def test_cli_export_user_errors(tmp_path):
    from splat.cli import run
    from splat.errors import SplatError

    random_scene(n=10).save(tmp_path / "a.ply")
    with pytest.raises(SplatError, match="itself"):
        run(["export", str(tmp_path / "a.ply")])
    with pytest.raises(SplatError, match=r"must end in \.spz"):
        run(["export", str(tmp_path / "a.ply"), "--format", "spz", "--out", str(tmp_path / "x.ply")])
    with pytest.raises(SplatError, match="no such file"):
        run(["export", str(tmp_path / "missing.ply")])


def test_cli_export_undoes_normalization(tmp_path):
    from splat.cli import run

    scene = random_scene(n=50, degree=0)
    norm = torch.eye(4)
    norm[:3, :3] *= 0.5  # the trainer shrank the dataset by 2 and moved it
    norm[:3, 3] = torch.tensor([1.0, 0.0, -2.0])
    torch.save({"splats": scene.tensors(), "normalization": norm}, tmp_path / "c.pt")
    assert run(["export", str(tmp_path / "c.pt"), "--out", str(tmp_path / "orig.ply")]) == 0
    assert run(["export", str(tmp_path / "c.pt"), "--out", str(tmp_path / "norm.ply"), "--no-original-frame"]) == 0
    orig, kept = splat.load(tmp_path / "orig.ply"), splat.load(tmp_path / "norm.ply")
    assert torch.equal(kept.means, scene.means)
    torch.testing.assert_close(orig.means, (scene.means - norm[:3, 3]) * 2.0, atol=1e-5, rtol=0)
    torch.testing.assert_close(orig.log_scales, scene.log_scales + math.log(2.0), atol=1e-5, rtol=0)
