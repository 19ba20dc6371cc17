"""The profiling helpers in benchmarks/: raster_timeline's accounting and iterate.py's loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_timeline_accounts_for_the_whole_iteration(cpu_backend, raster_timeline):
    own_loader = cpu_backend._backend._load
    rows = raster_timeline.timeline("small", iterations=1, warmup=0)  # one iteration: medians are its values
    assert cpu_backend._backend._load is own_loader  # the stamping wrapper is gone again
    ops = [name for name in rows if not name.startswith("gap ") and name != "total"]
    # every op of the staged render, in call order, around the loss
    assert ops.index("project_forward") < ops.index("sh_colors_forward") < ops.index("intersect_tiles")
    assert ops.index("intersect_tiles") < ops.index("blend_forward") < ops.index("loss") < ops.index("blend_backward")
    assert ops.index("blend_backward") < ops.index("sh_colors_backward") < ops.index("project_backward")
    # ops and the gaps between them tile the iteration exactly
    assert sum(ms for name, ms in rows.items() if name != "total") == pytest.approx(rows["total"], rel=1e-9)
    assert all(ms >= 0 for ms in rows.values())
    assert "gap start -> project_forward" in rows and "gap project_backward -> end" in rows


def test_iterate_runs_iterations_for_the_given_time(cpu_backend):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "iterate.py"), "--case", "small", "--seconds", "0.5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("case small, cpu, 2 thread(s): ")
    iterations = int(line.split(": ")[1].split(" iterations")[0])
    assert iterations >= 5  # a small-case iteration takes a few ms
