"""Keep freed memory in the process instead of handing it back to the OS (glibc).

A training step allocates and frees the same large tensors every iteration.
glibc's malloc serves blocks above a moving threshold with fresh mmap()s and
trims the heap's free top back to the kernel, so each step page-faults its
buffers in again and the kernel zeroes them: 7.6 million page faults and 22 s
of system time in an 80 s lego training run on 2 cores, and three times the
rasterizer's steady-state time in its first 20 calls. With fixed thresholds
the heap keeps what it freed: the same run takes 140 thousand faults and 9 %
less wall time (docs/benchmarks.md, "Ninth session"). The cost is that memory
freed after a peak stays with the process (up to TRIM_THRESHOLD of free heap
top), as with PyTorch's CUDA caching allocator.

`import splat` applies it; SPLAT_MALLOC_TUNING=0 in the environment leaves
malloc alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks below this come from the heap (a 1M-Gaussian render's largest tensors
# are under 200 MB); larger ones are rare enough to map freshly.
MMAP_THRESHOLD = 256 << 20
# Free heap top kept before trimming.
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Fix glibc malloc's mmap and trim thresholds (see the module docstring).
    Returns whether it did: False off Linux/glibc or with SPLAT_MALLOC_TUNING=0."""
    if os.environ.get("SPLAT_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
