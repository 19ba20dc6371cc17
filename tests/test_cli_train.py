"""`splat train / eval / render` in-process on a tiny synthetic scene."""

from __future__ import annotations

import json
import sys

import pytest

import splat.cli


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from splat.datasets.synthetic import make_scene

    out = tmp_path_factory.mktemp("synth") / "scene"
    make_scene(out, n_train=40, n_test=3, width=64, seed=0)
    return out


@pytest.fixture(scope="module")
def trained(tiny_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    code = splat.cli.run(["train", "--data", str(tiny_scene), "--preset", "fast", "--max-steps", "300",
                          "--output-dir", str(out), "--run-name", "r1", "--quiet", "--sh-degree", "1", "--init-num-pts", "5000"])
    assert code == 0
    return out / "scene" / "3dgs" / "r1"


def main_exit(argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["splat", *argv])
    with pytest.raises(SystemExit) as exc:
        splat.cli.main()
    return exc.value.code, capsys.readouterr()


def test_train_writes_run(trained):
    for name in ("config.yml", "metrics.json", "curves.png", "scene.ply"):
        assert (trained / name).is_file(), name
    m = json.loads((trained / "metrics.json").read_text())
    assert m["step"] == 300 and m["psnr"] > m["initial"]["psnr"] + 2.5  # measured ~+4 dB
    assert (trained / "ckpts" / "ckpt_000300.pt").is_file()


def test_eval(trained, capsys):
    assert splat.cli.run(["eval", str(trained), "--renders", "1"]) == 0
    out = capsys.readouterr().out
    assert "test: 3 views, PSNR" in out and "LPIPS" in out  # skipped (no local weights) or measured
    res = json.loads((trained / "eval_test.json").read_text())
    m = json.loads((trained / "metrics.json").read_text())
    assert res["psnr"] == pytest.approx(m["psnr"], abs=1e-4)  # same renders as the trainer's evaluation
    assert len(list((trained / "eval" / "test").glob("*.png"))) == 1


@pytest.mark.parametrize("path", ["orbit", "spiral", "train"])
def test_render_video(trained, tmp_path, path):
    import imageio.v3 as iio

    out = tmp_path / f"{path}.mp4"
    assert splat.cli.run(["render", str(trained), "--path", path, "--frames", "6", "--out", str(out)]) == 0
    frames = iio.imread(out, extension=".mp4")
    assert frames.shape[0] == 6 and frames.shape[1:] == (64, 64, 3)
    assert frames.std() > 5  # not a blank video: the scene is in view


def test_export_run(trained, tmp_path):
    import splat

    out = tmp_path / "s.spz"
    assert splat.cli.run(["export", str(trained), "--format", "spz", "--out", str(out)]) == 0
    assert len(splat.load(out)) == len(splat.load(trained / "scene.ply"))


def test_resume_finished_run_extends(trained, capsys):
    assert splat.cli.run(["train", "--resume", str(trained), "--max-steps", "310", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((trained / "metrics.json").read_text())["step"] == 310


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "{scene}", "--strategy", "nope"], "strategy"),
    (["train", "--data", "{scene}", "--max-steps", "0", "--quiet"], "max_steps must be >= 1"),
    (["train", "--data", "{scene}", "--data-factor", "0", "--quiet"], "data-factor"),
    (["train", "--data", "{scene}", "--grow-grad2d", "-1", "--quiet"], "--grow-grad2d must be positive"),
    (["train", "--data", "/nonexistent/scene", "--quiet"], "no such folder"),
    (["train", "--quiet"], "--data"),
    (["train", "--resume", "/nonexistent/run"], "not a run directory"),
    (["eval", "/nonexistent/run"], "not a run directory"),
    (["render", "{scene}", "--path", "circle"], "path"),
])  # fmt: skip
def test_bad_options_exit_2(tiny_scene, monkeypatch, capsys, argv, message):
    argv = [a.replace("{scene}", str(tiny_scene)) for a in argv]
    code, out = main_exit(argv, monkeypatch, capsys)
    assert code == 2
    assert message in out.err


def test_unwritable_output_exit_2(tiny_scene, tmp_path, monkeypatch, capsys):
    (tmp_path / "f").write_text("x")
    code, out = main_exit(["train", "--data", str(tiny_scene), "--output-dir", str(tmp_path / "f"), "--quiet",
                           "--max-steps", "5"], monkeypatch, capsys)
    assert code == 2 and "cannot write to the output folder" in out.err


def test_data_synthetic_is_the_builtin_scene(tmp_path, monkeypatch):
    """`--data synthetic` (the README's main job) renders the built-in scene once into
    the cache and trains on it; an existing folder named synthetic still wins."""
    from pathlib import Path

    from splat.cli.train import Train
    from splat.datasets.synthetic import builtin_scene

    monkeypatch.setenv("SPLAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    cfg = Train(data=Path("synthetic"), preset="fast").build_config()
    scene = tmp_path / "cache" / "scenes" / "synthetic"
    assert Path(cfg.data) == scene
    first = (scene / "transforms_train.json").stat().st_mtime_ns
    assert len(json.loads((scene / "transforms_train.json").read_text())["frames"]) == 60
    assert builtin_scene() == scene
    assert (scene / "transforms_train.json").stat().st_mtime_ns == first  # reused, not rendered again
    assert not list(scene.parent.glob(".synthetic.*"))  # no temporary folder left behind
    (tmp_path / "synthetic").mkdir()
    assert Path(Train(data=Path("synthetic"), preset="fast").build_config().data) == Path("synthetic")


def test_grow_grad2d_option_reaches_the_strategy():
    from splat.cli.train import Train

    cfg = Train(grow_grad2d=0.0001).build_config()
    assert cfg.default.grow_grad2d == 0.0001 and not cfg.default.absgrad
    cfg = Train(absgrad=True, grow_grad2d=0.0005).build_config()  # an explicit threshold wins
    assert cfg.default.absgrad and cfg.default.grow_grad2d == 0.0005
    assert Train().build_config().default.grow_grad2d == 0.0002  # INRIA default
