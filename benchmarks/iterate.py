"""`splat bench raster` iterations in a loop, for a sampling profiler to watch.

    perf record -e cpu-clock -F 5000 -g -o /tmp/perf.data \\
        python benchmarks/iterate.py --case a --seconds 15
    perf report -i /tmp/perf.data --no-children --sort sym -g none
    perf annotate -i /tmp/perf.data --stdio -s '<symbol from the report>'

The CI VMs expose no hardware counters, but perf's cpu-clock event (a timer)
works: it shows each function's share of the time, and within one its
instructions. (A sample lands on the instruction where the timer struck,
usually just after the one retirement waited for.)
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import splat  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch

from splat.shared_data import shared_data_dir

DATA = shared_data_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="a", help="a splat bench raster case: small, a, b, bird, or N@WxH")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to iterate (after one warm-up run)")
    args = parser.parse_args()
    from splat.cli.bench import make_case, time_iteration

    torch.set_num_threads(args.threads)
    scene = make_case(args.case, DATA)
    time_iteration(scene, args.backend)  # builds or loads the extension
    times, end = [], time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        forward_s, backward_s, _ = time_iteration(scene, args.backend)
        times.append(forward_s + backward_s)
    print(f"case {args.case}, {args.backend}, {args.threads} thread(s): {len(times)} iterations, "
          f"median {median(times) * 1e3:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
