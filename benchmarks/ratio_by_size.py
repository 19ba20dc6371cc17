"""cpu / torch speed-up against scene size: the bench's procedural scene at
several sizes, each backend in a fresh process as in `splat bench raster`.

    python benchmarks/ratio_by_size.py [--sizes 5000@128x128,20000@256x256] [--threads 2]

The bench reports the ratio on two sizes (small, a); this shows how it moves
in between: fixed costs per iteration (Python, autograd, thread wake-ups)
weigh on the cpu backend's small scenes, not on the reference's.
"""

from __future__ import annotations

import argparse
import os

from splat.cli.bench import WARMUP_RUNS, _in_subprocess
from splat.shared_data import shared_data_dir

DATA = shared_data_dir()
SIZES = "5000@128x128,10000@192x192,20000@256x256,50000@320x320,100000@400x400"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help="comma-separated N@WxH")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=5, help="timed cpu runs at least (the reference: 2)")
    args = parser.parse_args()
    print(f"{'case':<16} {'intersections':>13} {'torch ms':>9} {'cpu ms':>8} {'cpu/torch':>9}")
    for case in args.sizes.split(","):
        ref = _in_subprocess(case, "torch", 2, DATA, args.threads, 1)
        cpu = _in_subprocess(case, "cpu", args.repeats, DATA, args.threads, WARMUP_RUNS)
        t, c = (r["forward_ms"] + r["backward_ms"] for r in (ref, cpu))
        print(f"{case:<16} {cpu['intersections']:>13,} {t:>9.1f} {c:>8.2f} {t / c:>8.0f}x")


if __name__ == "__main__":
    main()
