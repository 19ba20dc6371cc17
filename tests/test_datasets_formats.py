"""Loaders on small scenes written by the tests, checked against exact synthetic cameras."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import splat.datasets as D
from splat.datasets.llff import write_poses_bounds
from splat.datasets.synthetic import make_dynamic_scene, make_scene


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def blender(tmp_path_factory) -> Path:
    """A tiny synthetic Blender scene: 6 train + 2 test views at 96x72, exact cameras."""
    return make_scene(tmp_path_factory.mktemp("syn") / "scene", n_train=6, n_test=2, width=96, height=72, seed=1)


def _truth(blender: Path):
    s = D.load(blender, normalize="none")
    return s, s.cameras.viewmats.double().numpy(), s.cameras.Ks.double().numpy()


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_blender_synthetic_cameras_are_exact(blender):
    s, V, K = _truth(blender)
    assert len(s.train_indices) == 6 and len(s.test_indices) == 2
    f = 0.5 * 96 / math.tan(math.radians(25))
    assert K[0, 0, 0] == pytest.approx(f, rel=1e-6) and K[0, :2, 2].tolist() == [48, 36]
    # the origin area (where the objects stand) is in front of every camera, near the image center
    uv, depth = s.cameras.project(torch.tensor([[0.0, 0.0, 0.35]]), 0)
    assert depth.item() > 3 and abs(uv[0, 0].item() - 48) < 15 and abs(uv[0, 1].item() - 36) < 15
    img, alpha = s.image(0), s.alpha(0)
    assert img.shape == (72, 96, 3) and alpha.shape == (72, 96, 1)
    mean_alpha = np.mean([s.alpha(i).mean().item() for i in range(len(s))])
    assert 0.2 < mean_alpha < 1.0  # the sky beyond the ground plane is transparent


def _rot_to_qvec(R):
    w = math.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return [w, x, y, z]


def write_colmap_text(root: Path, V, K, image_files, pts, w, h, dup_name=False, bad_track=False):
    """COLMAP text model: one PINHOLE camera, poses V, points pts [P, 3] seen by every camera."""
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True)
    fx, fy, cx, cy = (float(K[0, a, b]) for a, b in ((0, 0), (1, 1), (0, 2), (1, 2)))
    (sparse / "cameras.txt").write_text(f"1 PINHOLE {w} {h} {fx!r} {fy!r} {cx!r} {cy!r}\n")
    img_lines = []
    for i, f in enumerate(image_files):
        q = _rot_to_qvec(V[i, :3, :3])
        t = V[i, :3, 3]
        cam = pts @ V[i, :3, :3].T + t
        uv = cam @ K[i].T
        uv = uv[:, :2] / uv[:, 2:]
        name = image_files[0].name if (dup_name and i == 1) else f.name
        img_lines.append(" ".join(repr(float(x)) for x in [*q, *t]).join([f"{i + 1} ", f" 1 {name}"]))
        img_lines.append(" ".join(f"{float(u)!r} {float(v)!r} {j + 1}" for j, (u, v) in enumerate(uv)))
    (sparse / "images.txt").write_text("\n".join(img_lines) + "\n")
    pl = []
    for j, p in enumerate(pts):
        track = " ".join(f"{i + 1} {j if not (bad_track and j == 0) else j + 1}" for i in range(len(image_files)))
        pl.append(f"{j + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} 200 100 50 0.1 {track}")
    (sparse / "points3D.txt").write_text("\n".join(pl) + "\n")
    return sparse


def make_colmap_scene(blender: Path, root: Path, **kw) -> tuple[Path, np.ndarray]:
    s, V, K = _truth(blender)
    (root / "images").mkdir(parents=True)
    files = []
    for i in s.train_indices:
        src = s.store.sources[i].path
        dst = root / "images" / f"{i:03d}.png"
        Image.open(src).convert("RGB").save(dst)
        files.append(dst)
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3)) + [0, 0, 0.4]
    Vt, Kt = V[s.train_indices], K[s.train_indices]
    write_colmap_text(root, Vt, Kt, files, pts, 96, 72, **kw)
    return root, pts


def test_colmap_text(blender, tmp_path):
    root, pts = make_colmap_scene(blender, tmp_path / "colmap")
    before = snapshot(root)
    s_truth, V, K = _truth(blender)
    s = D.load(root, normalize="none")
    assert s.format == "colmap" and len(s) == 6 and len(s.points) == 20
    assert np.allclose(s.cameras.viewmats.numpy(), V[s_truth.train_indices], atol=1e-5)
    assert np.allclose(s.point_colors[0].numpy(), [200 / 255, 100 / 255, 50 / 255])
    assert s.image(2).shape == (72, 96, 3)
    assert snapshot(root) == before  # nothing written into the user's folder


def test_llff(blender, tmp_path):
    s_truth, V, K = _truth(blender)
    root = tmp_path / "llff"
    (root / "images").mkdir(parents=True)
    for k, i in enumerate(s_truth.train_indices):  # images at half the size in the file
        Image.open(s_truth.store.sources[i].path).convert("RGB").resize((48, 36)).save(root / "images" / f"{k:03d}.png")
    c2w = np.linalg.inv(V[s_truth.train_indices])
    write_poses_bounds(root / "poses_bounds.npy", c2w, K[0], 96, 72, 0.5, 9.0)
    s = D.load(root, normalize="none")
    assert s.format == "llff" and len(s) == 6
    assert s.cameras.Ks[0, 0, 0].item() == pytest.approx(K[0, 0, 0] / 2, rel=1e-5)
    assert s.cameras.widths[0] == 48
    assert np.allclose(s.cameras.viewmats.numpy(), V[s_truth.train_indices], atol=1e-5)
    assert s.metadata["bounds"][0] == [0.5, 9.0]
    # every 8th image is held out: the first
    assert s.test_indices == [0]


def test_nerfstudio_with_distortion(tmp_path, recwarn):
    """Dots drawn at distorted projections land at the pinhole projections after undistortion."""
    import pycolmap

    root = tmp_path / "ns"
    (root / "images").mkdir(parents=True)
    w, h = 160, 120
    fx, fy, cx, cy, k1, k2, p1, p2 = 150.0, 152.0, 81.0, 59.0, -0.25, 0.08, 0.002, -0.001
    cam = pycolmap.Camera.create_from_model_name(1, "OPENCV", fx, w, h)
    cam.params = [fx, fy, cx, cy, k1, k2, p1, p2]
    pts = np.array([[x, y, 4.0] for x in (-1.5, 0, 1.5) for y in (-1.0, 0, 1.0)])  # camera frame
    img = np.zeros((h, w, 3), np.uint8)
    for p in pts:
        u, v = cam.img_from_cam(p[None] / p[2])[0]
        img[int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2] = 255
    Image.fromarray(img).save(root / "images" / "a.png")
    Image.fromarray(img).save(root / "images" / "b.png")
    c2w_gl = np.eye(4)
    c2w_gl[:3, 1:3] *= -1  # OpenCV identity camera in OpenGL axes
    frames = [{"file_path": f"images/{n}.png", "transform_matrix": (c2w_gl + [[0, 0, 0, k], [0] * 4, [0] * 4, [0] * 4]).tolist()}
              for k, n in enumerate(["a", "b", "missing1", "missing2"])]  # fmt: skip
    meta = dict(fl_x=fx, fl_y=fy, cx=cx, cy=cy, w=w, h=h, k1=k1, k2=k2, p1=p1, p2=p2, aabb_scale=16, frames=frames)
    (root / "transforms.json").write_text(json.dumps(meta))
    before = snapshot(root)
    with pytest.warns(UserWarning, match="skipped 2 of 4 frames"):
        s = D.load(root, normalize="none")
    assert len(s) == 2 and s.metadata["aabb_scale"] == 16
    und = pycolmap.undistort_camera(pycolmap.UndistortCameraOptions(), cam)
    assert (s.cameras.widths[0].item(), s.cameras.heights[0].item()) == (und.width, und.height)
    out = s.image(0).numpy().max(-1)
    Kn = s.cameras.Ks[0].double()
    errs = []
    for p in pts:
        uv = (Kn @ torch.tensor(p / p[2]))[:2].numpy()
        u0, v0 = int(uv[0]), int(uv[1])
        win = out[v0 - 4 : v0 + 5, u0 - 4 : u0 + 5]
        assert win.sum() > 0.5, f"no dot near {uv}"
        yy, xx = np.mgrid[v0 - 4 : v0 + 5, u0 - 4 : u0 + 5] + 0.5
        c = np.array([(xx * win).sum(), (yy * win).sum()]) / win.sum()
        errs.append(np.linalg.norm(c - uv))
    # dots were drawn on whole pixels (up to 1 px off), so allow that much
    assert np.mean(errs) < 1.0, errs
    assert list((tmp_path / "cache").rglob("*.png"))  # undistorted copy went to the cache
    assert snapshot(root) == before


def test_two_camera_video(tmp_path):
    vid = make_dynamic_scene(tmp_path / "vid", n_frames=5, n_cameras=2, width=64, height=48, seed=2)
    frames = make_dynamic_scene(tmp_path / "frames", n_frames=5, n_cameras=2, width=64, height=48, seed=2, video=False)
    gt = json.loads((vid / "ground_truth.json").read_text())
    v = D.load(vid)
    f = D.load(frames)
    assert isinstance(v, D.VideoScene) and v.format == "video" and f.format == "frames"
    assert v.num_frames == 5 and len(v.cameras) == 2 and v.cameras.names == ["cam00", "cam01"]
    back = v.normalization.to_original_viewmats(v.cameras.viewmats.double()).numpy()
    assert np.allclose(back, np.array(gt["viewmats"]), atol=1e-5)
    assert np.allclose(v.cameras.Ks.numpy(), np.array(gt["Ks"]), atol=1e-4)
    # decode out of order: the reader restarts when asked for an earlier frame
    for t in (3, 1, 4):
        a, b = v.frame(t), f.frame(t)
        assert a.shape == (2, 48, 64, 3)
        assert (a - b).abs().mean() < 0.02  # H.264 at crf 12 is close to the PNG frames
    assert (f.frame(0) - f.frame(4)).abs().mean() > 0.002  # objects move
    half = D.load(vid, data_factor=2)
    assert half.frame(0).shape == (2, 24, 32, 3) and half.cameras.Ks[0, 0, 0] == pytest.approx(v.cameras.Ks[0, 0, 0] / 2)


def test_colmap_frames_layout(blender, tmp_path):
    root = tmp_path / "cf"
    for t in range(2):
        make_colmap_scene(blender, root / f"frame{t:06d}")
    v = D.load(root)
    assert v.format == "colmap_frames" and v.num_frames == 2 and len(v.cameras) == 6
    assert v.frame(1).shape == (6, 72, 96, 3)
    pts, cols = v.frame_points(1)
    assert pts.shape == (20, 3)


def test_masks_and_data_factor(blender, tmp_path):
    root, _ = make_colmap_scene(blender, tmp_path / "masked")
    (root / "masks").mkdir()
    for p in (root / "images").iterdir():
        m = np.zeros((72, 96), np.uint8)
        m[:, :48] = 255
        Image.fromarray(m).save(root / "masks" / f"{p.name}.png")
    s = D.load(root, masks_dir="masks", data_factor=2)
    m = s.mask(0)
    assert m.shape == (36, 48) and m[:, :24].all() and not m[:, 24:].any()
    assert s.image(0).shape == (36, 48, 3)
    assert s.cameras.Ks[0, 0, 2].item() == pytest.approx(24.0)
