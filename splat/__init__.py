"""splat: 3D Gaussian splatting toolkit.

Importing this package never compiles anything and never touches a GPU:
the compiled rasterizer backends are built lazily on first use.
"""

__version__ = "0.1.0"

import os as _os

# torch and the compiled rasterizer both run OpenMP loops back to back. libgomp's
# default lets idle threads spin 300,000 rounds (7 ms here) before sleeping, which
# starves the next loop when anything else shares the cores (training steps 3-4x
# slower on 2 cores); sleeping at once (PASSIVE) makes every loop wait for a
# wake-up instead. A 1,000-round spin (24 us here) bridges the gap between
# back-to-back loops: training steps 5-9 % faster than PASSIVE alone on the machine,
# 4.5 % slower with a second training process on the same cores (docs/training.md).
# Read when torch loads, so only effective when `splat` is imported first (the
# `splat` command always is); a user's own setting of either variable wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"], _os.environ["GOMP_SPINCOUNT"] = "ACTIVE", "1000"

from splat import allocator as _allocator

# Freed tensors stay in the heap instead of being page-faulted in again each
# step (9 % faster training; SPLAT_MALLOC_TUNING=0 opts out).
_allocator.keep_freed_memory()

from splat.errors import SplatError

__all__ = ["SplatError", "__version__", "load", "train", "GaussianScene"]


def load(path):
    """Read a scene (.ply, .compressed.ply, .splat, .spz, .sog, SOG folder, checkpoint,
    run directory) into a `splat.scene.GaussianScene`. Imports torch on first use."""
    from splat.formats import load as _load

    return _load(path)


def train(config):
    """Train a static scene; `config` is a `splat.training.TrainConfig` (or a dict of its
    fields, or a scene folder path for the defaults). Returns the run directory."""
    from splat.training import train as _train

    return _train(config)


def __getattr__(name: str):
    # lazy: `import splat` stays light; the scene module imports torch
    if name in ("GaussianScene", "Camera"):
        from splat import scene

        return getattr(scene, name)
    raise AttributeError(f"module 'splat' has no attribute {name!r}")
