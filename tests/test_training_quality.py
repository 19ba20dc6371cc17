"""Quality targets of issue 4 (hours on a CPU): run with `pytest -m slow`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_quality.py"
    spec = importlib.util.spec_from_file_location("train_quality", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["lego-7k", "lego-30k"])
def test_lego_psnr_target(data_dir, tmp_path, name):
    bench = _bench()
    result = bench.run(name, str(tmp_path))
    assert result["psnr"] >= bench.RUNS[name]["target"], result["psnr"]
