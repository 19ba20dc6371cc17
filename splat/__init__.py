"""splat: 3D Gaussian splatting toolkit.

Importing this package never compiles anything and never touches a GPU:
the compiled rasterizer backends are built lazily on first use.
"""

__version__ = "0.1.0"

from splat.errors import SplatError

__all__ = ["SplatError", "__version__", "load", "GaussianScene"]


def load(path):
    """Read a scene (.ply, .compressed.ply, .splat, .spz, .sog, SOG folder, checkpoint,
    run directory) into a `splat.scene.GaussianScene`. Imports torch on first use."""
    from splat.formats import load as _load

    return _load(path)


def __getattr__(name: str):
    # lazy: `import splat` stays light; the scene module imports torch
    if name in ("GaussianScene", "Camera"):
        from splat import scene

        return getattr(scene, name)
    raise AttributeError(f"module 'splat' has no attribute {name!r}")
