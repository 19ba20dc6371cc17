"""`import splat` fixes glibc malloc's thresholds so freed tensors are reused
rather than page-faulted in again (splat/allocator.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocates, fills and frees a 64 MB tensor 20 times; prints the minor page
# faults of the last ten rounds (the heap grows during the first few: torch's
# aligned allocations do not fit exactly in the block freed before).
_ROUNDS = """
import resource, sys
import splat, torch
torch.empty(1).fill_(0)
before = None
for i in range(20):
    if i == 10:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20)
    x.fill_(1.0)
    del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(tuning: str) -> int:
    env = {**os.environ, "SPLAT_MALLOC_TUNING": tuning}
    out = subprocess.run([sys.executable, "-c", _ROUNDS], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_freed_tensors_are_reused_without_page_faults():
    untuned, tuned = _faults("0"), _faults("1")
    # untuned: each 64 MB block is a fresh mmap, 16k faults per round
    assert untuned > 10 * 8000, untuned
    assert tuned < 1000, tuned


def test_opt_out_leaves_malloc_alone(monkeypatch):
    from splat import allocator

    monkeypatch.setenv("SPLAT_MALLOC_TUNING", "0")
    assert allocator.keep_freed_memory() is False
