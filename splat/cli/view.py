"""`splat view`: open a scene in the web viewer (viser; server- or client-side rendering)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from splat.errors import SplatError


@dataclass
class View:
    """Open a scene, checkpoint or run directory in the web viewer."""

    path: tyro.conf.Positional[Path]
    """Anything `splat.load` reads: .ply, .splat, .spz, .sog, a checkpoint or a run directory."""
    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 shares the viewer on the network."""
    port: int = 8080
    """Port to serve on; the next free port is used when it is taken."""
    render: Literal["server", "client"] = "server"
    """Initial renderer: server (our rasterizer, exact; JPEG frames) or client (WebGL splats)."""
    data: Path | None = None
    """A dataset (COLMAP, Blender, ...) whose SfM points and training cameras to show."""
    seconds: float | None = None
    """Stop after this many seconds (default: until Ctrl-C)."""

    def main(self) -> int:
        import time

        t0 = time.perf_counter()
        if not self.path.exists():
            raise SplatError(f"{self.path}: no such file or directory")
        try:
            import splat

            scene = splat.load(self.path)
        except SplatError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, EOFError) as err:  # a file we cannot read
            raise SplatError(f"{self.path}: cannot read ({type(err).__name__}: {err})") from None
        data = None
        if self.data is not None:
            import splat.datasets as D

            data = D.load(self.data)
        from splat.viewer.server import ViewerServer

        try:
            viewer = ViewerServer(scene, host=self.host, port=self.port, render=self.render, data=data,
                                  source=str(self.path))  # fmt: skip
        except OSError as err:
            raise SplatError(f"cannot serve on {self.host}:{self.port}: {err.strerror or err}") from None
        busy = f" (port {self.port} was busy)" if self.port and viewer.port != self.port else ""
        print(f"splat viewer: {len(scene):,} splats from {self.path} ready in {time.perf_counter() - t0:.1f} s")
        print(f"splat viewer: open {viewer.url}{busy}  (Ctrl-C to stop)", flush=True)
        viewer.wait(self.seconds)
        return 0
