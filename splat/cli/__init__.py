"""The `splat` command: one tyro config dataclass per subcommand.

Each subcommand lives in its own module and exposes a dataclass with a
`main()` method. Modules are imported only when their command runs, so
`splat --help` stays fast. Nested groups (`splat bench raster`) are dicts.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

import splat
from splat.errors import SplatError

# name -> "module:Class" (a command) or a dict of those (a group).
COMMANDS: dict[str, str | dict[str, str]] = {
    "demo": "splat.cli.demo:Demo",
    "build": "splat.cli.build:Build",
    "process": "splat.cli.process:Process",
    "export": "splat.cli.export:Export",
    "train": "splat.cli.train:Train",
    "eval": "splat.cli.eval:Eval",
    "render": "splat.cli.render:Render",
    "view": "splat.cli.view:View",
    "bench": {
        "raster": "splat.cli.bench:BenchRaster",
    },
}

DESCRIPTIONS: dict[str, str] = {
    "demo": "Render a built-in procedural scene to a PNG (no download needed).",
    "process": "Photos or a video -> a COLMAP scene (structure-from-motion with pycolmap).",
    "build": "Compile the rasterizer's C++ (and, with a GPU, CUDA) backends now.",
    "export": "Convert a run, checkpoint or splat file to .ply, .splat or .spz.",
    "train": "Train a Gaussian scene from a capture folder (writes a run directory).",
    "eval": "PSNR / SSIM (/ LPIPS) of a run on its test views.",
    "render": "Render a run along a camera path (orbit, spiral, train) to a video.",
    "view": "Open a scene, checkpoint or run in the web viewer (viser).",
    "bench": "Benchmarks that print measured ratios (see docs/benchmarks.md).",
}


def _load(target: str) -> type:
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _usage(prog: str, group: dict) -> str:
    lines = [f"usage: {prog} <command> [options]", "", "commands:"]
    for name, target in group.items():
        desc = DESCRIPTIONS.get(name, "")
        if not desc and isinstance(target, str):
            doc = (_load(target).__doc__ or "").strip().splitlines()
            desc = doc[0] if doc else ""
        lines.append(f"  {name:<10} {desc}")
    lines += ["", f"Run '{prog} <command> --help' for a command's options."]
    if prog == "splat":
        lines.insert(1, f"splat {splat.__version__}: 3D Gaussian splatting toolkit.")
    return "\n".join(lines)


def run(argv: Sequence[str]) -> int:
    import tyro

    group: dict = COMMANDS
    prog = "splat"
    argv = list(argv)
    if argv[:1] == ["--version"]:
        print(f"splat {splat.__version__}")
        return 0
    while True:
        if not argv or argv[0] in ("-h", "--help"):
            print(_usage(prog, group))
            return 0
        name = argv.pop(0)
        if name not in group:
            print(f"{prog}: unknown command '{name}'\n\n{_usage(prog, group)}", file=sys.stderr)
            return 2
        prog = f"{prog} {name}"
        if isinstance(group[name], dict):
            group = group[name]
            continue
        cls = _load(group[name])
        config = tyro.cli(cls, args=argv, prog=prog)
        result = config.main()
        return int(result or 0)


def main() -> None:
    """Console-script entry point: user errors print one line and exit 2."""
    try:
        code = run(sys.argv[1:])
    except SplatError as err:
        print(f"splat: error: {err}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("splat: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
