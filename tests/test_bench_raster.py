"""`splat bench raster` runs each case in a subprocess; the torch reference's
OpenMP setting is part of what makes its cpu/torch ratio honest."""

from __future__ import annotations

import json
import subprocess
import types

import pytest

from splat.cli import bench
from splat.errors import SplatError


def test_reference_runs_with_default_openmp_spinning_and_cpu_with_ours(monkeypatch, tmp_path):
    """Under OMP_WAIT_POLICY=PASSIVE (splat's setting until the tenth session)
    the reference ran 2x slower, which inflated the ratio 2x; the torch case
    must get libgomp's default spinning, the cpu case the environment splat
    runs in."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    envs = {}

    def fake_run(cmd, capture_output, text, env):
        backend = "torch" if "'torch'" in cmd[-1] else "cpu"
        envs[backend] = env
        return types.SimpleNamespace(returncode=0, stdout="RESULT " + json.dumps({"backend": backend}), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    for backend in ("torch", "cpu"):
        assert bench._in_subprocess("small", backend, 1, tmp_path, 2) == {"backend": backend}
    assert envs["torch"]["OMP_WAIT_POLICY"] == "ACTIVE" and envs["torch"]["GOMP_SPINCOUNT"] == "300000"
    assert envs["cpu"] is None  # inherits this process's environment


def test_every_timed_case_is_warmed_up_first(monkeypatch, tmp_path):
    """Timing a cold run measures page faults and one-time setup: the torch
    reference on case (a) ran 15 % slower cold, which inflated the ratio."""
    calls = []

    def fake(case, backend, repeats, data_dir, threads, warmup):
        calls.append((case, backend, repeats, warmup))
        return dict(case=case, backend=backend, gaussians=1, width=1, height=1, forward_ms=1.0, backward_ms=1.0,
                    pairs=1, pairs_per_s=1.0, intersections=1, peak_rss_mb=1.0)  # fmt: skip

    monkeypatch.setattr(bench, "_in_subprocess", fake)
    assert bench.BenchRaster(repeats=3, data=tmp_path).main() == 0
    backends = {(case, backend) for case, backend, _, _ in calls}
    assert {("small", "torch"), ("small", "cpu"), ("a", "torch"), ("a", "cpu"), ("b", "cpu")} <= backends
    for case, backend, repeats, warmup in calls:
        assert warmup >= 1 and repeats >= 1, (case, backend)


def test_cases_by_name_or_size(tmp_path):
    """A case is a name or N@WxH; the named ones are the same scene at fixed sizes."""
    assert bench._case_size("small") == (5_000, 128, 128)
    assert bench._case_size("20000@256x192") == (20_000, 256, 192)
    scene = bench.make_case("300@48x32", tmp_path)
    assert scene["means"].shape == (300, 3) and (scene["width"], scene["height"]) == (48, 32)
    assert scene["viewmats"].shape == (1, 4, 4) and scene["Ks"][0, 0, 2] == 24.0
    for bad in ("tiny", "300@48", "300x48@32", "n@48x32"):
        with pytest.raises(SplatError, match="unknown benchmark case"):
            bench._case_size(bad)


def test_ratio_by_size_times_both_backends_per_size(monkeypatch, capsys, ratio_by_size):
    """Each size runs the reference (with its own OpenMP setting, in
    _in_subprocess) and the cpu backend; the ratio is their forward+backward."""
    script = ratio_by_size
    calls = []

    def fake(case, backend, repeats, data_dir, threads, warmup):
        calls.append((case, backend))
        ms = {"torch": 50.0, "cpu": 0.5}[backend] * int(case.split("@")[0]) / 1000
        return dict(forward_ms=ms, backward_ms=ms, intersections=7)

    monkeypatch.setattr(script, "_in_subprocess", fake)
    monkeypatch.setattr("sys.argv", ["ratio_by_size.py", "--sizes", "1000@16x16,4000@32x32"])
    script.main()
    assert calls == [("1000@16x16", "torch"), ("1000@16x16", "cpu"), ("4000@32x32", "torch"), ("4000@32x32", "cpu")]
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [("1000@16x16", "100.0", "1.00", "100x"),
                                                       ("4000@32x32", "400.0", "4.00", "100x")]  # fmt: skip


def test_real_scenes_are_found_through_splat_data_or_beside_the_repository(monkeypatch, tmp_path):
    from pathlib import Path

    from splat.shared_data import shared_data_dir

    monkeypatch.setenv("SPLAT_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.delenv("SPLAT_DATA")
    repo = Path(__file__).resolve().parents[1]
    assert shared_data_dir() == repo.parent / "shared" / "data"
