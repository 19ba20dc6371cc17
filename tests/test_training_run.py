"""Short real trainings: quality gain, exact resume, atomic checkpoints, bad input, run dir contents."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from splat.errors import SplatError
from splat.training import checkpoint, preset
from splat.training.config import DefaultStrategyConfig, MCMCStrategyConfig
from splat.training.loop import NonFiniteLossError, Trainer
from splat.training.losses import FunctionLoss


def small_config(data_dir, tmp_path, **kw):
    """cup at 1/8 resolution (100x75), a few hundred steps, densification from step 50."""
    cfg = preset(
        "fast", data=str(data_dir / "cup"), data_factor=8, output_dir=str(tmp_path / "out"), progress=False,
        max_steps=300, eval_steps=[300], ckpt_every=100, save_renders=2, sh_degree=1, sh_degree_interval=100,
        default=DefaultStrategyConfig(refine_start=50, refine_every=50, refine_stop=250, reset_every=10_000),
        mcmc=MCMCStrategyConfig(cap_max=15_000, refine_start=50, refine_every=50, refine_stop=250),
    )  # fmt: skip
    return dataclasses.replace(cfg, **kw)


@pytest.fixture(scope="module")
def short_run(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    trainer = Trainer(small_config(data_dir, tmp))
    run_dir = trainer.train()
    return trainer, run_dir


def test_short_run_improves_far_above_initial(short_run):
    trainer, _ = short_run
    initial, final = trainer.initial_eval["psnr"], trainer.evals[-1]["psnr"]
    print(f"cup 1/8, 300 steps: test PSNR {initial:.2f} -> {final:.2f} dB, SSIM {trainer.evals[-1]['ssim']:.3f}")
    # measured: 15.7 -> 25.0 dB (SSIM 0.83); the initial render is the SfM cloud
    assert initial < 18.0
    assert final > initial + 6.0
    assert final > 22.0


def test_run_dir_contents(short_run):
    import yaml

    import splat

    trainer, run = short_run
    assert run.parts[-3:-1] == ("cup", "3dgs")
    cfg = yaml.safe_load((run / "config.yml").read_text())
    assert cfg["max_steps"] == 300 and cfg["data_factor"] == 8 and cfg["default"]["refine_every"] == 50
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "done" and m["step"] == 300 and m["evals"][-1]["step"] == 300
    assert m["psnr"] == pytest.approx(trainer.evals[-1]["psnr"]) and m["initial"]["psnr"] < m["psnr"]
    assert len(m["curve"]) >= 30 and set(m["profile_s"]) >= {"render", "loss", "backward", "optimizer"}
    png = (run / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((run / "renders" / "test").glob("*.png"))) == 2
    assert [p.name for p in checkpoint.list_checkpoints(run)] == ["ckpt_000200.pt", "ckpt_000300.pt"]  # keep 2
    assert not list(run.rglob("*.tmp"))

    # scene.ply: the original (COLMAP) frame, readable by splat and by Open3D
    ply = splat.load(run / "scene.ply")
    snap = trainer.snapshot()
    assert len(ply) == len(snap) == m["num_gaussians"]
    orig = trainer.data.normalization.to_original_points(snap.means.double())
    assert torch.allclose(ply.means.double(), orig, atol=1e-4)
    ratio = ply.scales / snap.scales
    assert torch.allclose(ratio, torch.full_like(ratio, 1 / trainer.data.normalization.scale), rtol=1e-4)
    o3d = pytest.importorskip("open3d")
    pc = o3d.t.io.read_point_cloud(str(run / "scene.ply"))
    pos = torch.from_numpy(pc.point.positions.numpy())
    assert torch.allclose(pos, ply.means, atol=1e-6)
    assert torch.allclose(torch.from_numpy(pc.point.opacity.numpy()).flatten(), ply.opacity_logits, atol=1e-6)
    assert torch.allclose(torch.from_numpy(pc.point.f_dc.numpy()), ply.sh0[:, 0], atol=1e-6)

    # the checkpoint is readable as a scene too (normalized frame) and renders like the trainer
    ck = splat.load(run)
    assert torch.equal(ck.means, snap.means)
    v = trainer.data.view(trainer.data.test_indices[0])
    a = ck.render(v.viewmat, v.K, v.image.shape[1], v.image.shape[0])[0]
    b = snap.render(v.viewmat, v.K, v.image.shape[1], v.image.shape[0])[0]
    assert torch.equal(a, b)


class _Kill:
    """An observer that interrupts the run (like Ctrl-C / a kill) after a given step."""

    def __init__(self, at: int):
        self.at = at

    def on_start(self, trainer):
        pass

    def on_step(self, trainer, step, metrics):
        if step == self.at:
            raise KeyboardInterrupt

    def on_end(self, trainer):
        pass


@pytest.mark.parametrize("strategy", ["default", "mcmc"])
def test_resume_matches_uninterrupted_run(data_dir, tmp_path, strategy):
    kw = dict(strategy=strategy, max_steps=140, ckpt_every=60, eval_steps=[140], keep_ckpts=5, save_renders=0,
              sh_degree_interval=50, run_name="a")
    full = Trainer(small_config(data_dir, tmp_path, **kw))
    full.train()

    cut = Trainer(small_config(data_dir, tmp_path, **{**kw, "run_name": "b"}), observers=[_Kill(75)])
    with pytest.raises(KeyboardInterrupt):
        cut.train()
    # killed at step 75: the checkpoint of step 60 survives, nothing newer
    assert [p.name for p in checkpoint.list_checkpoints(cut.run_dir)] == ["ckpt_000060.pt"]
    resumed = Trainer.resume(cut.run_dir)
    assert resumed.step == 60
    resumed.train()
    assert len(full.params["means"]) == len(resumed.params["means"])
    for name in full.params:
        assert torch.equal(full.params[name], resumed.params[name]), name
    for name in full.optimizers:
        p0, p1 = full.optimizers[name].param_groups[0]["params"][0], resumed.optimizers[name].param_groups[0]["params"][0]
        assert torch.equal(full.optimizers[name].state[p0]["exp_avg_sq"], resumed.optimizers[name].state[p1]["exp_avg_sq"])
    assert full.evals[-1]["psnr"] == resumed.evals[-1]["psnr"]


def test_checkpoint_write_is_atomic(data_dir, tmp_path, monkeypatch):
    trainer = Trainer(small_config(data_dir, tmp_path, max_steps=10))
    trainer.run_dir = tmp_path / "run"
    for _ in range(3):
        trainer.train_step()
    good = trainer.save_checkpoint()
    size = good.stat().st_size
    trainer.train_step()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial checkpoint bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SplatError, match="cannot write checkpoint"):
        trainer.save_checkpoint()
    files = sorted(p.name for p in (tmp_path / "run" / "ckpts").iterdir())
    assert files == [good.name]  # no partial file, the previous checkpoint intact
    assert good.stat().st_size == size and checkpoint.load(good)["step"] == 3


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    trainer = Trainer(small_config(data_dir, tmp_path, max_steps=100, ckpt_every=20, eval_steps=[100]))
    nan = torch.tensor(float("nan"))
    trainer.loss_terms.append(FunctionLoss(lambda ctx: nan if ctx.step >= 45 else None, name="poison"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss .* step 46 .*poison.*ckpt_000040\.pt"):
        trainer.train()
    ckpts = checkpoint.list_checkpoints(trainer.run_dir)
    assert ckpts[-1].name == "ckpt_000040.pt"
    state = checkpoint.load(ckpts[-1])
    assert all(torch.isfinite(v).all() for v in state["splats"].values())
    assert json.loads((trainer.run_dir / "metrics.json").read_text())["status"].startswith("stopped")
    assert not (trainer.run_dir / "scene.ply").exists()


def test_unwritable_output_folder(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    trainer = Trainer(small_config(data_dir, tmp_path, output_dir=str(blocker / "out"), max_steps=5))
    with pytest.raises(SplatError, match="cannot write to the output folder"):
        trainer.train()


def test_invalid_options(data_dir, tmp_path):
    with pytest.raises(SplatError, match="max_steps must be >= 1"):
        Trainer(small_config(data_dir, tmp_path, max_steps=0))
    with pytest.raises(SplatError, match="no such folder"):
        Trainer(small_config(data_dir, tmp_path, data=str(tmp_path / "missing")))
    with pytest.raises(SplatError, match="data-factor"):
        Trainer(small_config(data_dir, tmp_path, data_factor=0))


def test_mip_appearance_pose_hooks_train(data_dir, tmp_path):
    """The anti-aliasing filter, appearance and pose hooks run and learn something."""
    cfg = small_config(data_dir, tmp_path, max_steps=60, eval_steps=[60], antialiased=True, mip_filter_3d=True,
                       appearance="affine", pose_opt=True, pose_lr=1e-4)
    trainer = Trainer(cfg)
    assert trainer.filter_3d is not None and torch.all(trainer.filter_3d > 0)
    trainer.train()
    assert trainer.evals[-1]["psnr"] > trainer.initial_eval["psnr"] + 2
    assert trainer.modules["pose"].delta.abs().max() > 0
    assert trainer.modules["appearance"].matrix.abs().max() > 0
    snap = trainer.snapshot()
    assert snap.antialiased
    # the exported scales include the 3D filter
    assert torch.all(snap.scales >= trainer.filter_3d[:, None] * (1 - 1e-4))
    assert math.isfinite(trainer.evals[-1]["ssim"])
