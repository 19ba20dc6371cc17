"""LPIPS is used only when its weights are already on disk; nothing is downloaded."""

from __future__ import annotations

import sys
import types

import torch

from splat.training.evaluate import LPIPS


def _fake_lpips_package(monkeypatch):
    """A stand-in `lpips` module: LPIPS(net=...) returns mean squared difference."""
    calls = []

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net: str, verbose: bool = True):
            super().__init__()
            calls.append(net)

        def forward(self, x, y):  # [B, 3, H, W] in [-1, 1]
            assert x.min() >= -1 and x.max() <= 1 and x.shape[1] == 3
            return ((x - y) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    module = types.ModuleType("lpips")
    module.LPIPS = FakeLPIPS
    monkeypatch.setitem(sys.modules, "lpips", module)
    return calls


def _no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("LPIPS tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_lpips_unavailable_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    metric = LPIPS(torch.device("cpu"))
    assert not metric.available()
    assert "lpips" in metric.reason and "not installed" in metric.reason


def test_lpips_unavailable_without_local_weights(monkeypatch, tmp_path):
    calls = _fake_lpips_package(monkeypatch)
    _no_downloads(monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    metric = LPIPS(torch.device("cpu"))
    assert not metric.available()
    assert "not downloaded" in metric.reason and str(tmp_path) in metric.reason
    assert calls == []  # the model was never built


def test_lpips_used_when_weights_present(monkeypatch, tmp_path):
    calls = _fake_lpips_package(monkeypatch)
    _no_downloads(monkeypatch)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth").write_bytes(b"")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    metric = LPIPS(torch.device("cpu"))
    assert metric.available() and calls == ["alex"]
    x = torch.zeros(1, 4, 5, 3)
    y = torch.full((1, 4, 5, 3), 0.5)
    # inputs go from [0, 1] to [-1, 1]: a 0.5 difference becomes 1.0
    assert metric(x, y) == 1.0
    assert metric(y, y) == 0.0
