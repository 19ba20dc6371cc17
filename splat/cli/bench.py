"""`splat bench raster`: rasterizer speed per backend, and the cpu/torch ratio.

Each case runs in a fresh subprocess so its peak memory (max RSS) is its own.
Reported per case and backend: median forward and backward milliseconds and
Gaussian-pixel pairs per second (pairs = sum over tiles of the tile's list
length x its pixel count: the work a tile rasterizer without per-pixel culling
would do; since the seventh session the lists hold only the tiles a Gaussian
reaches, so pairs per second are lower than before for the same speed).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from splat.errors import SplatError
from splat.shared_data import shared_data_dir


def _gaussian_pixel_pairs(meta) -> int:
    import torch

    offsets = meta.isect_offsets.flatten().long()
    counts = torch.diff(offsets, append=torch.tensor([meta.flatten_ids.numel()]))
    return int(counts.sum()) * meta.tile_size**2


def _bird_scene(data_dir: Path) -> dict:
    """SfM points of bird as Gaussians (scale: mean distance to 3 nearest neighbors)."""
    import torch

    from splat.datasets import load

    from splat.training.ops import knn_scale

    data = load(data_dir / "bird", normalize="none", check_images=False)
    pts = data.points.float()
    scale = knn_scale(pts, k=3).clamp(min=1e-4)
    n = len(pts)
    sh = torch.zeros(n, 16, 3)
    sh[:, 0] = (data.point_colors.float() - 0.5) / 0.28209479177387814
    cam = data.cameras
    return dict(
        means=pts, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), scales=scale[:, None].repeat(1, 3),
        opacities=torch.full((n,), 0.9), colors=sh, viewmats=cam.viewmats[:1].float(), Ks=cam.Ks[:1].float(),
        width=int(cam.widths[0]), height=int(cam.heights[0]),
    )  # fmt: skip


# The procedural cases: Gaussians, width, height.
CASE_SIZES = {"a": (100_000, 400, 400), "b": (1_000_000, 800, 800), "small": (5_000, 128, 128)}


def _case_size(case: str) -> tuple[int, int, int]:
    """A named case's size, or "N@WxH" (e.g. "20000@256x256"): N Gaussians of the same scene at W x H."""
    if case in CASE_SIZES:
        return CASE_SIZES[case]
    try:
        n, size = case.split("@")
        w, h = size.split("x")
        return int(n), int(w), int(h)
    except ValueError:
        raise SplatError(f"unknown benchmark case {case!r}: use one of {', '.join(CASE_SIZES)}, bird or N@WxH") from None


def make_case(case: str, data_dir: Path) -> dict:
    """A bench case's `rasterize` arguments: bird from data_dir, else the procedural scene (see _case_size)."""
    from splat import procedural

    if case == "bird":
        return _bird_scene(data_dir)
    n, w, h = _case_size(case)
    scene = procedural.surface_scene(n, seed=1)
    return dict(scene, viewmats=procedural.orbit_camera(30.0)[None], Ks=procedural.intrinsics(w, h)[None],
                width=w, height=h)  # fmt: skip


# Untimed runs before the timed ones, for every backend alike: the first
# builds or loads the extension and grows the heap (page faults for fresh
# memory), and the next few still run slower (caches, predictors, thread
# wake-ups). A case warms up for at least WARMUP_RUNS runs and WARMUP_S
# seconds, and is timed for at least `repeats` runs and TIMED_S seconds (at
# most MAX_RUNS each): a 2 ms case gets a hundred runs, the reference on case
# (a) (2 s a run) one warm-up and one timed run. Cold, that run was 15 %
# slower than its steady state; the cpu backend's small case 20-40 % slower
# over its first 7 runs than over 50.
WARMUP_RUNS, WARMUP_S, TIMED_S, MAX_RUNS = 2, 1.0, 1.0, 100

# The inputs the loss differentiates with respect to.
PARAMS = ("means", "quats", "scales", "opacities", "colors")


def fresh_inputs(scene: dict) -> dict:
    """The scene's tensors as new leaves, PARAMS requiring gradients: `rasterize`'s keyword arguments."""
    import torch

    return {k: v.detach().requires_grad_(k in PARAMS) if isinstance(v, torch.Tensor) else v for k, v in scene.items()}


def time_iteration(scene: dict, backend: str):
    """One timed iteration on fresh leaf inputs: rasterize, then backward of
    colors.sum() + alphas.sum(). Returns (forward s, backward s, meta)."""
    from splat.rasterizer import rasterize

    inputs = fresh_inputs(scene)
    t0 = time.perf_counter()
    colors, alphas, meta = rasterize(**inputs, backend=backend)
    t1 = time.perf_counter()
    (colors.sum() + alphas.sum()).backward()
    return t1 - t0, time.perf_counter() - t1, meta


def run_case(case: str, backend: str, repeats: int, data_dir: str, threads: int, warmup: int = WARMUP_RUNS) -> dict:
    """One case, one backend, in this process: warm-up runs, then the median of
    the timed ones (see WARMUP_RUNS); returns timings and peak memory."""
    import resource

    import torch

    torch.set_num_threads(threads)
    scene = make_case(case, Path(data_dir))

    def runs(at_least: int, seconds: float):
        """(forward s, backward s) of each run, and the last run's meta (older ones are freed)."""
        times, meta, t_end = [], None, time.perf_counter() + seconds
        while len(times) < MAX_RUNS and (len(times) < at_least or time.perf_counter() < t_end):
            forward_s, backward_s, meta = time_iteration(scene, backend)
            times.append((forward_s, backward_s))
        return times, meta

    runs(warmup, WARMUP_S)
    timed, meta = runs(max(repeats, 1), TIMED_S)
    fwd, bwd = sorted(t[0] for t in timed), sorted(t[1] for t in timed)
    f, b = fwd[len(fwd) // 2], bwd[len(bwd) // 2]
    pairs = _gaussian_pixel_pairs(meta)
    return dict(
        case=case, backend=backend, gaussians=len(scene["means"]), width=scene["width"], height=scene["height"],
        forward_ms=f * 1e3, backward_ms=b * 1e3, pairs=pairs, pairs_per_s=pairs / (f + b),
        intersections=int(meta.flatten_ids.numel()), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )  # fmt: skip


# The OpenMP setting the torch reference runs under: libgomp's default, idle
# threads spin for 300,000 rounds before sleeping (what PyTorch gets without
# splat). Under splat's own setting (a 1,000-round spin, see splat/__init__.py;
# PASSIVE until the tenth session) the reference's many small parallel ops
# would wait for more wake-ups (2x slower under PASSIVE on the small case), so
# the reference would look slower than it is.
REFERENCE_OPENMP = {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"}


def _in_subprocess(case: str, backend: str, repeats: int, data_dir: Path, threads: int,
                   warmup: int = WARMUP_RUNS) -> dict:  # fmt: skip
    code = (
        "import json, sys; from splat.cli.bench import run_case; "
        f"print('RESULT ' + json.dumps(run_case({case!r}, {backend!r}, {repeats}, {str(data_dir)!r}, {threads}, {warmup})))"
    )
    env = {**os.environ, **REFERENCE_OPENMP} if backend == "torch" else None
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SplatError(f"benchmark case {case}/{backend} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


@dataclass
class BenchRaster:
    """Time the rasterizer backends (forward, backward, Gaussian-pixel pairs per second)."""

    repeats: int = 5
    """Timed repetitions per case at least (more while under a second; after warm-up runs); the median is reported."""
    threads: int = 0
    """CPU threads (0: all cores)."""
    data: Path = shared_data_dir()
    """Folder with the real scenes (needs bird/ for the SfM case)."""
    json_out: Path | None = None
    """Also write all results as JSON here."""
    skip_torch_large: bool = False
    """Skip the slow torch reference on case (a)."""

    def main(self) -> int:
        threads = self.threads or os.cpu_count() or 1
        # (case, backend, timed repeats, warm-up runs)
        plan = [("small", "torch", 3, WARMUP_RUNS), ("small", "cpu", self.repeats, WARMUP_RUNS),
                ("a", "cpu", self.repeats, WARMUP_RUNS)]  # fmt: skip
        if not self.skip_torch_large:
            plan.append(("a", "torch", 1, 1))
        plan.append(("b", "cpu", max(1, self.repeats // 2), WARMUP_RUNS))
        if (self.data / "bird" / "sparse").exists():
            plan += [("bird", "cpu", self.repeats, WARMUP_RUNS)]
        else:
            print(f"(skipping the bird case: {self.data / 'bird'} not found; pass --data)")
        print(f"splat bench raster: {platform.processor() or platform.machine()}, {threads} threads, torch threads={threads}")
        policy = " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in REFERENCE_OPENMP)
        print(f"OpenMP: cpu backend {policy}; torch reference " + " ".join(f"{k}={v}" for k, v in REFERENCE_OPENMP.items()))
        header = f"{'case':<6} {'backend':<7} {'gaussians':>10} {'size':>9} {'fwd ms':>9} {'bwd ms':>9} {'Mpairs/s':>9} {'peak MB':>8}"
        print(header)
        results = []
        for case, backend, repeats, warmup in plan:
            r = _in_subprocess(case, backend, repeats, self.data, threads, warmup)
            results.append(r)
            print(
                f"{case:<6} {backend:<7} {r['gaussians']:>10,} {str(r['width']) + 'x' + str(r['height']):>9} "
                f"{r['forward_ms']:>9.1f} {r['backward_ms']:>9.1f} {r['pairs_per_s'] / 1e6:>9.1f} {r['peak_rss_mb']:>8.0f}"
            )
        by = {(r["case"], r["backend"]): r for r in results}
        for case in ("small", "a"):
            if (case, "torch") in by:
                t, c = by[(case, "torch")], by[(case, "cpu")]
                ratio = (t["forward_ms"] + t["backward_ms"]) / (c["forward_ms"] + c["backward_ms"])
                print(f"cpu / torch speed-up on case {case} (forward+backward, same run): {ratio:.0f}x")
        if self.json_out:
            self.json_out.write_text(json.dumps(results, indent=2))
        return 0
