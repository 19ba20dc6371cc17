"""Quality targets of issue 4 (hours on a CPU): run with `pytest -m slow`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["lego-7k", "lego-mcmc-7k", "lego-30k", "lego-mcmc-30k"])
def test_lego_psnr_target(data_dir, tmp_path, name, train_quality):
    bench = train_quality
    result = bench.run(name, str(tmp_path))
    assert result["psnr"] >= bench.RUNS[name]["target"], result["psnr"]
