"""Rasterizer benchmark: same as `splat bench raster` (see docs/benchmarks.md).

    python benchmarks/raster.py [--repeats 5] [--json-out results.json]
"""

import sys

from splat.cli import run

if __name__ == "__main__":
    sys.exit(run(["bench", "raster", *sys.argv[1:]]))
