"""Bad input: a SplatError naming the file and the problem, exit code 2, user folder untouched."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import splat.datasets as D
from splat.datasets.synthetic import make_scene
from splat.errors import SplatError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_scene(tmp_path_factory.mktemp("bad") / "scene", n_train=3, n_test=1, width=48, height=32, seed=4)


@pytest.fixture
def scene(base, tmp_path) -> Path:
    dst = tmp_path / "scene"
    shutil.copytree(base, dst)
    return dst


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def expect_error(root: Path, match: str, **kw):
    before = snapshot(root) if root.is_dir() else None
    with pytest.raises(SplatError, match=match):
        D.load(root, **kw)
    if before is not None:
        assert snapshot(root) == before


def edit_json(path: Path, fn):
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def test_missing_image(scene):
    (scene / "train" / "r_1.png").unlink()
    expect_error(scene, r"r_1\.png: image file is missing")


def test_unreadable_image(scene):
    (scene / "train" / "r_0.png").write_bytes(b"not a png at all")
    expect_error(scene, r"r_0\.png: unreadable image")


def test_image_size_disagrees_with_camera(tmp_path):
    root = tmp_path / "llff"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "images" / "a.png")
    from splat.datasets.llff import write_poses_bounds

    write_poses_bounds(root / "poses_bounds.npy", np.eye(4)[None], np.diag([50.0, 50, 1]), 40, 40)
    expect_error(root, r"a\.png: image is 40x30 but .*poses_bounds\.npy says 40x40")


def test_colmap_image_size_disagrees(tmp_path):
    root = tmp_path / "c"
    (root / "images").mkdir(parents=True)
    (root / "sparse" / "0").mkdir(parents=True)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "images" / "a.png")
    (root / "sparse/0/cameras.txt").write_text("1 PINHOLE 80 60 50 50 40 30\n")
    (root / "sparse/0/images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    (root / "sparse/0/points3D.txt").write_text("")
    expect_error(root, r"a\.png: image is 40x30 but its camera .* says 80x60")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    expect_error(tmp_path / "empty", "the scene folder is empty")


def test_missing_folder(tmp_path):
    expect_error(tmp_path / "nothing", "scene folder does not exist")


def test_unknown_layout(tmp_path):
    root = tmp_path / "odd"
    root.mkdir()
    (root / "notes.txt").write_text("hello")
    expect_error(root, "unknown scene layout")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_infinite_pose(scene, bad):
    def poison(meta):
        meta["frames"][1]["transform_matrix"][0][3] = bad

    edit_json(scene / "transforms_train.json", poison)
    expect_error(scene, r"pose of image 'train/r_1\.png' contains NaN or infinite")


def test_duplicate_image_names_blender(scene):
    edit_json(scene / "transforms_train.json", lambda m: m["frames"].append(m["frames"][0]))
    expect_error(scene, r"duplicate image name 'train/r_0\.png'")


def _colmap(tmp_path, images_txt: str, points_txt: str = "") -> Path:
    root = tmp_path / "colmap"
    (root / "images").mkdir(parents=True)
    (root / "sparse" / "0").mkdir(parents=True)
    for n in ("a.png", "b.png"):
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "images" / n)
    (root / "sparse/0/cameras.txt").write_text("1 PINHOLE 40 30 50 50 20 15\n")
    (root / "sparse/0/images.txt").write_text(images_txt)
    (root / "sparse/0/points3D.txt").write_text(points_txt)
    return root


def test_duplicate_image_names_colmap(tmp_path):
    root = _colmap(tmp_path, "1 1 0 0 0 0 0 0 1 a.png\n\n2 1 0 0 0 0.1 0 0 1 a.png\n\n")
    expect_error(root, r"images\.txt: duplicate image name 'a\.png'")


@pytest.mark.parametrize("track, problem", [
    ("1 0 2 0", r"image 'b\.png' links its 2D point 1 to 3D point 1, whose track does not list it"),
    ("1 0 2 5", r"cannot read the COLMAP model"),  # 2D index out of range (pycolmap refuses it)
    ("1 0 3 0", r"cannot read the COLMAP model \(Image with ID 3 does not exist\)"),
])  # fmt: skip
def test_colmap_tracks_disagree_with_images(tmp_path, track, problem):
    imgs = "1 1 0 0 0 0 0 0 1 a.png\n20 15 1\n2 1 0 0 0 0.1 0 0 1 b.png\n18 15 -1 20 15 1\n"
    root = _colmap(tmp_path, imgs, f"1 0 0 4 255 0 0 0.1 {track}\n")
    expect_error(root, r"sparse/0: " + problem)


def test_fisheye_refused(tmp_path):
    root = _colmap(tmp_path, "1 1 0 0 0 0 0 0 1 a.png\n\n")
    (root / "sparse/0/cameras.txt").write_text("1 OPENCV_FISHEYE 40 30 50 50 20 15 0.1 0 0 0\n")
    expect_error(root, "OPENCV_FISHEYE is a fisheye model")


def test_corrupt_transforms_json(scene):
    (scene / "transforms_test.json").write_text("{ not json")
    expect_error(scene, r"transforms_test\.json: invalid JSON")


def test_cli_exit_code_2(tmp_path, monkeypatch, capsys):
    """A bad scene given to any command using load() prints one line and exits 2 (checked via `process`)."""
    from splat.cli import main

    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["splat", "process", "--output", str(tmp_path / "o"), "--images", str(tmp_path / "empty")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("splat: error:") and "empty: no images" in err and err.count("\n") == 1
