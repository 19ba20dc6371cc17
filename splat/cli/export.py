"""`splat export`: convert a run directory, checkpoint or splat file to .ply, .splat or .spz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from splat.errors import SplatError


@dataclass
class Export:
    """Convert a run directory, checkpoint or splat file to .ply, .splat or .spz."""

    source: tyro.conf.Positional[Path]
    """A run directory (ckpts/*.pt or scene.ply), a .pt checkpoint, or any readable splat file."""
    format: Literal["ply", "splat", "spz"] = "ply"
    """Output format: 3DGS binary ply (lossless), antimatter15 .splat (SH 0), or Niantic .spz."""
    out: Path | None = None
    """Output path; default: beside the source file, or <run>/export/scene.<format> for a run."""
    spz_version: Literal[2, 3, 4] = 3
    """.spz version to write (2 and 3: gzip; 4: zstd streams, newer readers only)."""
    original_frame: bool = True
    """Undo the scene's normalization (if the run recorded one) so the export matches the dataset's frame."""

    def output_path(self) -> Path:
        if self.out is not None:
            return self.out
        if self.source.is_dir():
            return self.source / "export" / f"scene.{self.format}"
        name = self.source.name.removesuffix(".compressed.ply")
        out = self.source.with_name(Path(name).stem + f".{self.format}")
        if out.resolve() == self.source.resolve():
            raise SplatError(f"{self.source}: exporting to itself; pass --out")
        return out

    def main(self) -> int:
        import splat

        scene = splat.load(self.source)
        if self.original_frame:
            scene = scene.in_original_frame()
        out = self.output_path()
        if out.suffix.lower() != f".{self.format}":
            raise SplatError(f"--out {out}: the name must end in .{self.format} (or pass --format)")
        options = {"version": self.spz_version} if self.format == "spz" else {}
        scene.save(out, **options)
        print(f"wrote {len(scene):,} splats (SH degree {scene.sh_degree}) to {out}")
        return 0
