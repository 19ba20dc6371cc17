"""`benchmarks/train_quality.py --set`: overrides reach the run's config; bad keys are refused."""

from __future__ import annotations

import pytest


def test_overrides_and_tag(tmp_path, train_quality):
    bench = train_quality
    cfg = bench.config_for("lego-7k", str(tmp_path), overrides=["default.grow_grad2d=0.0001", "background=white"],
                           tag="g10")  # fmt: skip
    assert cfg.default.grow_grad2d == 0.0001 and cfg.background == "white"
    assert cfg.run_name == "lego-7k-g10" and cfg.max_steps == 7_000
    plain = bench.config_for("lego-7k", str(tmp_path))
    assert plain.default.grow_grad2d == 0.0002 and plain.run_name == "lego-7k"
    mcmc = bench.config_for("lego-mcmc-7k", str(tmp_path))
    assert mcmc.strategy == "mcmc" and mcmc.method == "3dgs-mcmc" and mcmc.max_steps == 7_000
    assert mcmc.mcmc.cap_max == 300_000 and mcmc.data_factor == 1


@pytest.mark.parametrize("item, message", [("default.nope=1", "unknown key"), ("background", "KEY=VALUE")])
def test_bad_override_is_refused(tmp_path, item, message, train_quality):
    with pytest.raises(SystemExit, match=message):
        train_quality.config_for("lego-7k", str(tmp_path), overrides=[item])
