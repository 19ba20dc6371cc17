"""Where tests and benchmarks find the real scenes (lego, bird, cup, splats)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path:
    """$SPLAT_DATA, else shared/data beside the repository (../shared/data from
    its root; found from this file, so with the editable install setup.sh makes)."""
    return Path(os.environ.get("SPLAT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
