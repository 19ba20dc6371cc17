"""Input validation's value scans, CPU extension vs torch, side by side in one process.

    python benchmarks/validation.py [--repeats 50]

Times `check_finite` and the zero-quaternion test of `splat.rasterizer.validation`
on the inputs of the `splat bench raster` cases, as a render meets them: right
after a render, when the idle OpenMP threads have gone to sleep. The torch path
is the one validation takes before the extension is loaded (or for inputs it
cannot scan); the two alternate, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import splat  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch

from splat.cli.bench import make_case
from splat.rasterizer import backend_cpu, build, rasterize, validation

INPUTS = ("means", "quats", "scales", "opacities", "viewmats", "Ks", "colors")


def scans(scene: dict) -> None:
    validation._has_zero_quaternion(scene["quats"])
    validation.check_finite({k: scene[k] for k in INPUTS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend_cpu.load_extension()
    loaded = build.loaded
    print(f"{args.threads} threads; microseconds, median of {args.repeats}, each right after a render")
    for case in ("small", "a"):
        scene = make_case(case, Path("."))
        times: dict[str, list[float]] = {"torch": [], "cpu extension": []}
        for _ in range(args.repeats):
            for path in times:
                build.loaded = loaded if path == "cpu extension" else (lambda name: None)
                rasterize(**scene, backend="cpu")
                time.sleep(0.002)  # the threads fall asleep, as between training steps
                t0 = time.perf_counter()
                scans(scene)
                times[path].append(time.perf_counter() - t0)
        build.loaded = loaded
        med = {p: sorted(v)[len(v) // 2] * 1e6 for p, v in times.items()}
        print(f"{case:<6} torch {med['torch']:8.1f}   cpu extension {med['cpu extension']:8.1f}   "
              f"({med['torch'] / med['cpu extension']:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
