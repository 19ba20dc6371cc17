"""Where derived files (undistorted, resized images; SfM scratch) are cached.

The user's scene folder is never written to. Caches live under
``$SPLAT_CACHE`` (default ``~/.cache/splat``), one folder per scene, named
after the scene and a hash of its absolute path so two scenes called
``images`` do not collide. Every file is written atomically, so a crash or
two DataLoader workers racing on the same image never leave a torn file.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from splat.atomic import atomic_write


def cache_root() -> Path:
    """The root of all splat caches: ``$SPLAT_CACHE`` or ``~/.cache/splat``."""
    env = os.environ.get("SPLAT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "splat"


def scene_cache_dir(scene_root: str | os.PathLike, kind: str = "datasets") -> Path:
    """Cache folder for one scene, e.g. ``~/.cache/splat/datasets/bird-1a2b3c4d5e``."""
    root = Path(scene_root).resolve()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return cache_root() / kind / f"{root.name or 'scene'}-{digest}"


def file_key(path: Path, *params: object) -> str:
    """A short key that changes when the source file or the processing changes."""
    st = path.stat()
    text = repr((str(path.resolve()), st.st_size, st.st_mtime_ns, params))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def write_png(path: Path, array: np.ndarray) -> None:
    """Atomically write a uint8 [H, W] or [H, W, C] array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
