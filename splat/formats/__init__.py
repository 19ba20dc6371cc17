"""Reading and writing Gaussian splat files: one module per format, dispatched here.

`load` picks the reader from the extension, then from the content; `save` picks the
writer from the extension (.ply, .splat, .spz). See docs/formats.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splat.errors import SplatError
from splat.formats.common import bad_file

if TYPE_CHECKING:
    from splat.scene import GaussianScene

READABLE = ".ply, .compressed.ply, .splat, .spz, .sog, SOG folder, .pt checkpoint, run directory"
WRITABLE = (".ply", ".splat", ".spz")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def detect(path: str | os.PathLike) -> str:
    """Format name: "ply", "splat", "spz", "sog", "checkpoint" or "run"."""
    path = Path(path)
    if path.is_dir():
        if (path / "meta.json").is_file():
            return "sog"
        from splat.formats.checkpoint import find_in_run_dir

        if find_in_run_dir(path) is not None:
            return "run"
        raise bad_file(path, "directory is neither a SOG folder (meta.json) nor a run (ckpts/*.pt or scene.ply)")
    if not path.exists():
        raise SplatError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if path.name == "meta.json" or suffix == ".sog":
        return "sog"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise bad_file(path, "empty file")
    if head == b"ply\n" or head == b"ply\r" or suffix == ".ply":
        return "ply"
    if head[:2] == b"\x1f\x8b" or head == b"NGSP" or suffix == ".spz":
        return "spz"
    if suffix == ".splat":
        return "splat"
    if head == b"PK\x03\x04":  # a zip: SOG bundle or a torch checkpoint
        import zipfile

        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        return "sog" if any(n.endswith("meta.json") for n in names) else "checkpoint"
    raise bad_file(path, f"unknown splat format (readable: {READABLE})")


def load(path: str | os.PathLike) -> GaussianScene:
    """Read any supported scene file, folder or run directory into a GaussianScene."""
    kind = detect(path)
    if kind == "ply":
        from splat.formats.ply import scene_from_ply
        from splat.formats.playcanvas import is_compressed_ply, scene_from_compressed_ply
        from splat.formats.ply_io import read_ply

        ply = read_ply(path)
        if is_compressed_ply(ply):
            return scene_from_compressed_ply(ply, path)
        return scene_from_ply(ply, path)
    if kind == "splat":
        from splat.formats.antimatter import read_splat

        return read_splat(path)
    if kind == "spz":
        from splat.formats.spz import read_spz

        return read_spz(path)
    if kind == "sog":
        from splat.formats.playcanvas import read_sog

        return read_sog(path)
    if kind == "checkpoint":
        from splat.formats.checkpoint import read_checkpoint

        return read_checkpoint(path)
    from splat.formats.checkpoint import find_in_run_dir

    return load(find_in_run_dir(path))


def save(scene: GaussianScene, path: str | os.PathLike, **options: Any) -> None:
    """Write `scene` in the format named by the extension; options go to that writer
    (.spz: version=2|3|4, sh1_bits=5, sh_rest_bits=4). Atomic."""
    name = Path(path).name.lower()
    if name.endswith(".compressed.ply"):
        raise SplatError(f"{path}: writing PlayCanvas compressed ply is not supported; use {', '.join(WRITABLE)}")
    suffix = Path(name).suffix
    if suffix not in WRITABLE:
        raise SplatError(f"{path}: cannot write '{suffix or name}' files; use {', '.join(WRITABLE)}")
    unexpected = set(options) - ({"version", "sh1_bits", "sh_rest_bits"} if suffix == ".spz" else set())
    if unexpected:
        raise TypeError(f"unexpected options for {suffix}: {sorted(unexpected)}")
    if suffix == ".ply":
        from splat.formats.ply import write_3dgs_ply

        write_3dgs_ply(scene, path)
    elif suffix == ".splat":
        from splat.formats.antimatter import write_splat

        write_splat(scene, path)
    else:
        from splat.formats.spz import write_spz

        write_spz(scene, path, **options)


__all__ = ["load", "save", "detect"]
