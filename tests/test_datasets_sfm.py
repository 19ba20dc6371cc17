"""`splat process` on rendered images whose true poses are known."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from PIL import Image

import splat.datasets as D
from splat.cli import run
from splat.datasets.synthetic import make_scene
from splat.errors import SplatError


def umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity (s, R, t) minimizing |dst - (s R src + t)|; src, dst [N, 3]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    E = np.eye(3)
    E[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ E @ Vt
    s = np.trace(np.diag(S) @ E) / (a**2).sum(1).mean()
    return s, R, mu_d - s * R @ mu_s


def test_process_recovers_synthetic_poses(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPLAT_CACHE", str(tmp_path / "cache"))
    truth_dir = make_scene(tmp_path / "truth", n_train=16, n_test=0, width=320, height=240, seed=0,
                           transparent=False, supersample=2, arc_deg=100, elevation_deg=(30, 50))  # fmt: skip
    photos = tmp_path / "photos"
    photos.mkdir()
    truth = D.load(truth_dir, normalize="none")
    for i in range(len(truth)):
        Image.open(truth.store.sources[i].path).convert("RGB").save(photos / f"{i:03d}.png")
    assert run(["process", "--output", str(tmp_path / "scene"), "--images", str(photos)]) == 0
    out = capsys.readouterr().out
    assert "registered 16/16 images" in out and "mean reprojection error" in out

    rec = D.load(tmp_path / "scene", normalize="none")
    assert len(rec) == 16 and rec.points_are_sfm and len(rec.points) > 200
    idx = [int(n.split(".")[0]) for n in rec.names]
    Vt = truth.cameras.viewmats.double().numpy()[idx]
    Vr = rec.cameras.viewmats.double().numpy()
    ct = np.linalg.inv(Vt)[:, :3, 3]
    cr = np.linalg.inv(Vr)[:, :3, 3]
    s, R, t = umeyama(cr, ct)
    pos_err = np.linalg.norm((s * cr @ R.T + t) - ct, axis=1) / np.linalg.norm(ct - ct.mean(0), axis=1).mean()
    rot_err = []
    for i in range(len(idx)):
        # true world-to-camera rotation vs. the recovered one expressed in the true frame
        dR = Vt[i, :3, :3] @ (Vr[i, :3, :3] @ R.T).T
        rot_err.append(math.degrees(math.acos(np.clip((np.trace(dR) - 1) / 2, -1, 1))))
    assert max(rot_err) < 1.0, rot_err
    assert pos_err.max() < 0.02, pos_err
    # focal length recovered within 2% (true: 0.5 * 320 / tan(25 deg))
    assert rec.cameras.Ks[0, 0, 0].item() == pytest.approx(160 / math.tan(math.radians(25)), rel=0.02)


def test_process_fails_when_too_few_register(tmp_path):
    photos = tmp_path / "noise"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # unrelated noise images: nothing matches
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    with pytest.raises(SplatError, match=r"only \d+ of 4 images could be registered"):
        run(["process", "--output", str(tmp_path / "out"), "--images", str(photos)])


def test_process_cli_exit_code(tmp_path, monkeypatch, capsys):
    from splat.cli import main

    monkeypatch.setattr(sys, "argv", ["splat", "process", "--output", str(tmp_path / "o"), "--images", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    assert "nope: image folder does not exist" in capsys.readouterr().err


def test_process_video(tmp_path, monkeypatch, capsys):
    """`splat process --video`: frames extracted at --fps, all of them registered."""
    import json

    import imageio.v3 as iio

    scene = make_scene(tmp_path / "src", n_train=16, n_test=1, width=320, transparent=False, arc_deg=80)
    frames = []
    for f in json.loads((scene / "transforms_train.json").read_text())["frames"]:
        name = f["file_path"] if f["file_path"].endswith(".png") else f["file_path"] + ".png"
        frames.append(iio.imread(scene / name)[..., :3])
    video = tmp_path / "orbit.mp4"
    iio.imwrite(video, np.stack(frames), fps=8, codec="libx264", macro_block_size=16)
    monkeypatch.setattr(sys, "argv", ["splat"])
    assert run(["process", "--video", str(video), "--fps", "8", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "extracted 16 frames" in out  # 2 s of video sampled at 8 fps
    loaded = D.load(tmp_path / "out", check_images=True)
    assert len(loaded.cameras.names) >= 14  # views 5 degrees apart: (nearly) all register
    assert len(loaded.points) > 300
    assert "splat train --data" in out
