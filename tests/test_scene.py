"""GaussianScene: construction, per-splat operations, frames, checkpoints and rendering."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import splat
from splat.rasterizer import rasterize
from splat.scene import Camera, GaussianScene

W, H = 64, 48


def small_scene(n: int = 150, degree: int = 2, seed: int = 0) -> GaussianScene:
    """Splats in front of the default camera (which sits at the origin looking down +z)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.8, 0.6, 0.5]) + torch.tensor([0.0, 0.0, 4.0])
    return GaussianScene(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        log_scales=torch.rand(n, 3, generator=g) * 1.5 - 3.5,
        opacity_logits=torch.randn(n, generator=g),
        sh0=torch.randn(n, 1, 3, generator=g) * 0.5,
        shN=torch.randn(n, (degree + 1) ** 2 - 1, 3, generator=g) * 0.3,
    )


def camera(viewmat: torch.Tensor | None = None) -> Camera:
    K = torch.tensor([[60.0, 0.0, W / 2], [0.0, 60.0, H / 2], [0.0, 0.0, 1.0]])
    return Camera(torch.eye(4) if viewmat is None else viewmat, K, W, H)


def rotation(axis, angle: float) -> torch.Tensor:
    axis = torch.nn.functional.normalize(torch.tensor(axis, dtype=torch.float64), dim=0)
    cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def similarity(scale: float, R: torch.Tensor, t) -> torch.Tensor:
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = scale * R
    m[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return m


def test_render_equals_rasterize():
    scene = small_scene()
    cam = camera()
    colors, alphas, _ = scene.render(cam, backend="torch")
    ref_colors, ref_alphas, _ = rasterize(
        scene.means, scene.quats, scene.scales, scene.opacities, scene.sh,
        cam.viewmat[None], cam.K[None], W, H, sh_degree=2, backend="torch",
    )  # fmt: skip
    assert colors.shape == (1, H, W, 3)
    assert alphas.max() > 0.5  # the scene is in view
    torch.testing.assert_close(colors, ref_colors, rtol=0, atol=0)
    torch.testing.assert_close(alphas, ref_alphas, rtol=0, atol=0)
    # the four-argument form and rasterize kwargs pass through
    depth, _, _ = scene.render(cam.viewmat, cam.K, W, H, render_mode="D", backend="torch")
    assert depth.shape == (1, H, W, 1)
    with pytest.raises(TypeError):
        scene.render(cam.viewmat)


def test_transform_moves_everything_consistently():
    """Rendering a rigidly moved scene from the moved camera gives the same image:
    checks means, orientations and the rotation of SH bands together."""
    scene = small_scene(degree=3)
    T = similarity(1.0, rotation([0.3, -1.0, 0.5], 0.9), [0.5, -1.0, 2.0])
    moved = scene.transformed(T)
    viewmat = torch.linalg.inv(T).float()  # world' -> world -> camera (identity)
    before, _, _ = scene.render(camera(), backend="torch")
    after, _, _ = moved.render(camera(viewmat), backend="torch")
    assert before.abs().max() > 0.1
    torch.testing.assert_close(after, before, atol=2e-4, rtol=0)
    # SH actually matters here: dropping the rotation of the bands changes the image
    unrotated = GaussianScene(moved.means, moved.quats, moved.log_scales, moved.opacity_logits, moved.sh0, scene.shN)
    wrong, _, _ = unrotated.render(camera(viewmat), backend="torch")
    assert (wrong - before).abs().max() > 1e-2


def test_scaling_and_original_frame():
    scene = small_scene()
    T = similarity(2.5, rotation([1.0, 2.0, 0.0], -0.4), [1.0, 2.0, 3.0])
    moved = scene.transformed(T)
    torch.testing.assert_close(moved.log_scales, scene.log_scales + math.log(2.5))
    torch.testing.assert_close(moved.normalization, T.float())
    back = moved.in_original_frame()
    assert back.normalization is None
    torch.testing.assert_close(back.means, scene.means, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.log_scales, scene.log_scales, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.shN, scene.shN, atol=1e-5, rtol=0)
    dots = (back.unit_quats * scene.unit_quats).sum(-1).abs()
    assert dots.min() > 1 - 1e-6
    with pytest.raises(ValueError, match="similarity"):
        scene.transformed(torch.diag(torch.tensor([1.0, 2.0, 3.0, 1.0])))


def test_spz_frame_flip_matches_sh_rotation():
    """The per-coefficient signs used for spz's RUB frame equal a true 180-degree SH rotation."""
    from splat.formats.frames import RDF_TO_RUB, sh_rotation
    from splat.formats.spz import SH_FLIP

    D = sh_rotation(RDF_TO_RUB[:3, :3], 3)
    torch.testing.assert_close(torch.block_diag(*D), torch.diag(torch.tensor(SH_FLIP[:15], dtype=torch.float64)),
                               atol=1e-9, rtol=0)  # fmt: skip


def test_subset_len_bytes_and_device():
    scene = small_scene(n=10, degree=1)
    scene.extras = {"age": torch.arange(10)}
    assert len(scene) == 10 and scene.sh_degree == 1
    # 3 + 4 + 3 + 1 + 3 + 9 float32 per splat, plus an int64 extra
    assert scene.num_bytes == 10 * (23 * 4 + 8)
    part = scene.subset(scene.means[:, 0] > 0)
    assert len(part) == int((scene.means[:, 0] > 0).sum())
    assert torch.equal(part.extras["age"], torch.nonzero(scene.means[:, 0] > 0)[:, 0])
    picked = scene.subset(torch.tensor([3, 1]))
    assert torch.equal(picked.means, scene.means[[3, 1]])
    assert scene.to("cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="quats"):
        GaussianScene(scene.means, scene.quats[:5], scene.log_scales, scene.opacity_logits, scene.sh0, scene.shN)


def test_from_tensors_both_conventions():
    scene = small_scene(n=20, degree=1)
    raw = GaussianScene.from_tensors(**{k: v for k, v in scene.tensors().items()})
    assert torch.equal(raw.log_scales, scene.log_scales) and torch.equal(raw.shN, scene.shN)
    act = GaussianScene.from_tensors(scene.means, scene.quats, scene.scales, scene.opacities,
                                     colors=scene.sh, activated=True)  # fmt: skip
    torch.testing.assert_close(act.log_scales, scene.log_scales)
    torch.testing.assert_close(act.opacity_logits, scene.opacity_logits, atol=1e-4, rtol=1e-4)
    rgb = GaussianScene.from_tensors(scene.means, scene.quats, scene.scales, scene.opacities,
                                     colors=torch.full((20, 3), 0.75), activated=True)  # fmt: skip
    assert rgb.sh_degree == 0
    torch.testing.assert_close(0.5 + 0.28209479177387814 * rgb.sh0[:, 0], torch.full((20, 3), 0.75))


def test_checkpoint_and_run_dir(tmp_path):
    scene = small_scene(n=30)
    norm = similarity(2.0, torch.eye(3, dtype=torch.float64), [0.0, 1.0, 0.0]).float()
    splats = {**scene.tensors(), "grad_accum": torch.ones(30)}
    torch.save({"step": 100, "splats": splats, "antialiased": True, "normalization": norm}, tmp_path / "c.pt")
    loaded = splat.load(tmp_path / "c.pt")
    for k, t in scene.tensors().items():
        assert torch.equal(loaded.tensors()[k], t), k
    assert loaded.antialiased and torch.equal(loaded.normalization, norm)
    assert list(loaded.extras) == ["grad_accum"]

    run = tmp_path / "run"
    (run / "ckpts").mkdir(parents=True)
    torch.save({"splats": small_scene(n=5).tensors()}, run / "ckpts" / "ckpt_999.pt")
    torch.save({"splats": scene.tensors()}, run / "ckpts" / "ckpt_1000.pt")  # highest step wins
    assert len(splat.load(run)) == 30
    only_ply = tmp_path / "run2"
    only_ply.mkdir()
    scene.save(only_ply / "scene.ply")
    assert len(splat.load(only_ply)) == 30


def test_import_splat_stays_light():
    code = "import splat, sys; bad = {'torch', 'zstandard', 'open3d', 'PIL'} & set(sys.modules); print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert callable(splat.load) and splat.GaussianScene is GaussianScene
