"""`splat bench raster` runs each case in a subprocess; the torch reference's
OpenMP setting is part of what makes its cpu/torch ratio honest."""

from __future__ import annotations

import json
import subprocess
import types

from splat.cli import bench


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
