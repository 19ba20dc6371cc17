"""Seeded degradations on a copy of a small synthetic scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import splat.datasets as D
from splat.datasets import degrade as dg
from splat.datasets.synthetic import make_scene


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("deg") / "clean", n_train=4, n_test=2, width=64, height=48, seed=3)


def _imgs(root, split="train"):
    s = D.load(root, normalize="none")
    idx = s.train_indices if split == "train" else s.test_indices
    return s, torch.stack([s.image(i) for i in idx])


@pytest.mark.parametrize("op", [
    dg.GaussianNoise(0.05), dg.PoissonNoise(30), dg.MotionBlur(7), dg.Defocus(2), dg.Jpeg(10),
    dg.Photometric(), dg.Occluders(2), dg.Haze(1.5),
], ids=lambda op: op.name)  # fmt: skip
def test_each_degradation_changes_train_only_and_is_seeded(clean, tmp_path, op):
    a = dg.degrade(clean, tmp_path / "a", [op], seed=7)
    b = dg.degrade(clean, tmp_path / "b", [op], seed=7)
    _, c_train = _imgs(clean)
    _, a_train = _imgs(a)
    _, b_train = _imgs(b)
    assert torch.equal(a_train, b_train)  # same seed, same result
    assert (a_train - c_train).abs().mean() > 0.003
    assert torch.equal(_imgs(a, "test")[1], _imgs(clean, "test")[1])  # test views stay clean
    manifest = json.loads((a / "degradations.json").read_text())
    assert manifest["seed"] == 7 and manifest["operations"][0]["op"] == op.name and manifest["images"] == 4


def test_composed_and_other_seed_differs(clean, tmp_path):
    ops = [dg.Photometric(), dg.GaussianNoise(0.02)]
    a = dg.degrade(clean, tmp_path / "a", ops, seed=1)
    b = dg.degrade(clean, tmp_path / "b", ops, seed=2)
    assert not torch.equal(_imgs(a)[1], _imgs(b)[1])
    per = json.loads((a / "degradations.json").read_text())["per_image"]
    assert len(per) == 4 and all("exposure_stops" in v for v in per.values())


def test_noise_level_and_haze_formula(clean, tmp_path):
    _, c = _imgs(clean)
    _, n = _imgs(dg.degrade(clean, tmp_path / "n", [dg.GaussianNoise(0.05)], seed=0))
    inner = (c > 0.1) & (c < 0.9)  # away from clipping
    assert (n - c)[inner].std().item() == pytest.approx(0.05, abs=0.01)
    _, h = _imgs(dg.degrade(clean, tmp_path / "h", [dg.Haze(beta=1.0, airlight=(1.0, 1.0, 1.0))], seed=0))
    # top row: t = exp(-1); I = J t + A (1 - t), up to 8-bit rounding and alpha compositing on white
    t = np.exp(-1.0)
    assert torch.allclose(h[:, 0], c[:, 0] * t + (1 - t), atol=2 / 255)


def test_downsample_rescales_cameras(clean, tmp_path):
    out = dg.degrade(clean, tmp_path / "d", [dg.Downsample(4)], seed=0, splits=("train", "test"))
    s = D.load(out)
    c = D.load(clean)
    assert s.image(0).shape == (12, 16, 3)
    assert s.cameras.Ks[0, 0, 0].item() == pytest.approx(c.cameras.Ks[0, 0, 0].item() / 4, rel=1e-4)
    with pytest.raises(Exception, match="factor must be 2, 4 or 8"):
        dg.Downsample(3)


def test_motion_blur_along_se3_path_uses_renderer(clean, tmp_path):
    calls = []

    def renderer(viewmat, K, w, h):  # a stand-in renderer: brightness follows the camera's x
        calls.append(viewmat.copy())
        return np.full((h, w, 3), 0.5 + 0.5 * np.tanh(viewmat[0, 3]))

    out = dg.degrade(clean, tmp_path / "m", [dg.MotionBlur(samples=5, max_translation=0.5)], seed=0, renderer=renderer)
    assert len(calls) == 4 * 5
    offsets = [np.linalg.norm(v[:3, 3] - calls[0][:3, 3]) for v in calls[:5]]
    assert 0 < max(offsets) <= 0.5 + 1e-9  # poses along a short path
    rec = json.loads((out / "degradations.json").read_text())["per_image"]
    assert all("path_rotation_deg" in r for r in rec.values())
