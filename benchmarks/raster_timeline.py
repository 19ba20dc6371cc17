"""Where a `splat bench raster` iteration's time goes on the cpu backend: each
extension op in call order, and the time between ops (Python, autograd,
torch's own ops such as the loss), medians over the iterations.

    python benchmarks/raster_timeline.py --case small --threads 2

The ops' sum against the total is the share outside the extension; a gap
longer than the OpenMP spin (about 24 us, splat/__init__.py) lets the worker
threads fall asleep, so the next parallel op also waits for a wake-up.
"""

from __future__ import annotations

import argparse
import time
from statistics import median
from typing import Callable

import splat  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch

from splat.shared_data import shared_data_dir

DATA = shared_data_dir()


class StampedOps:
    """An extension whose ops call record(name, start s, end s) after each call
    (also used by cpu_ab.py --flow)."""

    def __init__(self, ext, record: Callable[[str, float, float], None]):
        self._ext, self._record = ext, record

    def __getattr__(self, op: str):
        fn = getattr(self._ext, op)

        def stamped(*args):
            t0 = time.perf_counter()
            out = fn(*args)
            self._record(op, t0, time.perf_counter())
            return out

        return stamped


def timeline(case: str, iterations: int, warmup: int) -> dict[str, float]:
    """Median ms of each op and of each gap before it ("gap A -> B"), in call
    order, plus the loss and the total."""
    from splat.cli.bench import make_case, fresh_inputs
    from splat.rasterizer import backend_cpu, rasterize

    scene = make_case(case, DATA)
    events: list = []
    load = backend_cpu._backend._load
    stamped = StampedOps(load(), lambda *event: events.append(event))
    backend_cpu._backend._load = lambda: stamped
    rows: dict[str, list[float]] = {}
    try:
        for i in range(warmup + iterations):
            events.clear()
            inputs = fresh_inputs(scene)
            t0 = time.perf_counter()
            colors, alphas, _ = rasterize(**inputs, backend="cpu")
            t1 = time.perf_counter()
            loss = colors.sum() + alphas.sum()
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            if i < warmup:
                continue
            previous, previous_name = t0, "start"
            for name, begin, end in sorted(events + [("loss", t1, t2)], key=lambda e: e[1]):
                rows.setdefault(f"gap {previous_name} -> {name}", []).append(1e3 * (begin - previous))
                rows.setdefault(name, []).append(1e3 * (end - begin))
                previous, previous_name = end, name
            rows.setdefault(f"gap {previous_name} -> end", []).append(1e3 * (t3 - previous))
            rows.setdefault("total", []).append(1e3 * (t3 - t0))
    finally:
        backend_cpu._backend._load = load  # the backend's own loader again
    return {name: median(v) for name, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="small", help="a splat bench raster case: small, a, b, bird, or N@WxH")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = timeline(args.case, args.iterations, args.warmup)
    gaps = sum(ms for name, ms in rows.items() if name.startswith("gap "))
    ops = sum(ms for name, ms in rows.items() if not name.startswith("gap ") and name not in ("loss", "total"))
    print(f"case {args.case}, {args.threads} thread(s), median ms of {args.iterations} iterations")
    for name, ms in rows.items():
        print(f"{'  ' * name.startswith('gap ') + name:<45} {ms:8.3f}")
    print(f"{'sum of the extension ops':<45} {ops:8.3f}\n{'sum of the gaps between ops':<45} {gaps:8.3f}")


if __name__ == "__main__":
    main()
