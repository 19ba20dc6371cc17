"""Side-by-side timing of the CPU extension at a git revision against the working tree.

Both builds load into one process and run alternately on the same inputs, so
machine noise hits both alike; prints medians and the speed ratio.

    python benchmarks/cpu_ab.py --base 161b583                  # blend, projection, SH, intersection
    python benchmarks/cpu_ab.py --base 161b583 --train-steps 300 # + lego training steps
    python benchmarks/cpu_ab.py --base HEAD --threads 2 --flow   # whole iterations, as the bench times them

Each stage alone runs with its data in cache; inside a whole iteration
(rasterize, then backward) the other stages have evicted it, which can
reverse a decision measured on the stages alone (see sh.cpp, colors_range).
--flow prints each op's time inside the iterations too; an unchanged op's
ratio shows the noise floor.

The base sources come from `git archive` into a temporary folder (nothing is
checked out), the working tree's are copied; both are built the same way
here (see load_working_tree) and cached under ~/.cache/splat/ab/.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import splat  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch
from raster_timeline import StampedOps  # this folder is on sys.path when run as a script

from splat.shared_data import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
DATA = shared_data_dir()


def _build(root: Path, tag: str):
    """The CPU extension from root/rasterizer/csrc, built in root/build (same flags as rasterizer/build.py)."""
    from torch.utils import cpp_extension

    csrc, build_dir = root / "rasterizer" / "csrc", root / "build"
    build_dir.mkdir(exist_ok=True)
    flags = ["-O3", "-std=c++17", "-fopenmp", "-march=native", "-fno-trapping-math", "-fno-math-errno", "-Wno-psabi"]
    return cpp_extension.load(
        name=f"splat_cpu_ab_{tag}", sources=[str(p) for p in sorted((csrc / "cpu").glob("*.cpp"))],
        extra_cflags=flags, extra_ldflags=["-fopenmp"], extra_include_paths=[str(csrc / "include")],
        build_directory=str(build_dir),
    )  # fmt: skip


def load_revision(rev: str):
    """The CPU extension built from rasterizer/csrc at git revision `rev`."""
    sha = subprocess.check_output(["git", "rev-parse", "--short", rev], cwd=REPO, text=True).strip()
    root = Path.home() / ".cache" / "splat" / "ab" / sha
    if not (root / "rasterizer").exists():
        archive = subprocess.check_output(["git", "archive", sha, "rasterizer/csrc"], cwd=REPO)
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(root)
    return _build(root, sha)


def load_working_tree():
    """The CPU extension built from the working tree's rasterizer/csrc, the same
    way as load_revision's: loaded side by side, an extension from
    rasterizer/build.py ran 1.04-1.10x faster than an identical one built here,
    though both compile with the same flags (the code's placement)."""
    sources = sorted(p for p in (REPO / "rasterizer" / "csrc").rglob("*") if p.is_file())
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:10]
    root = Path.home() / ".cache" / "splat" / "ab" / f"tree{digest}"
    if not (root / "rasterizer").exists():
        shutil.copytree(REPO / "rasterizer" / "csrc", root / "rasterizer" / "csrc")
    return _build(root, f"tree{digest}")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def alternate(exts: dict, repeats: int, forward, backward) -> dict:
    """Median ms of forward(ext) and backward(ext, forward's output) per extension,
    the extensions taking turns, after two warm-up rounds."""
    times = {name: ([], []) for name in exts}
    for i in range(repeats + 2):
        for name, ext in exts.items():
            t0 = time.perf_counter()
            out = forward(ext)
            t1 = time.perf_counter()
            backward(ext, out)
            t2 = time.perf_counter()
            if i >= 2:
                times[name][0].append(1e3 * (t1 - t0))
                times[name][1].append(1e3 * (t2 - t1))
    return {name: (median(f), median(b)) for name, (f, b) in times.items()}


def intersect(ext, m, width: int, height: int):
    """ext's tile intersection of the projected Gaussians in meta m: the
    ellipse-culled lists where ext has them (conics and opacities), else whole rectangles."""
    ts = m.tile_size
    tiles = (ts, (width + ts - 1) // ts, (height + ts - 1) // ts)
    base = (m.means2d.contiguous(), m.radii, m.depths.contiguous())
    if "arg7" in (ext.intersect_tiles.__doc__ or ""):  # 8 arguments: with conics and opacities
        return ext.intersect_tiles(*base, m.conics.contiguous(), m.opacities.contiguous(), *tiles)
    return ext.intersect_tiles(*base, *tiles)  # revisions before the ellipse test


def time_blend(exts: dict, case: str, repeats: int) -> dict:
    """Median blend forward and backward ms per extension on one benchmark case,
    each on the tile lists of its own intersection."""
    from splat.cli.bench import make_case
    from splat.rasterizer import rasterize

    scene = make_case(case, DATA)
    with torch.no_grad():
        _, _, m = rasterize(**scene, backend="cpu")
    g = torch.Generator().manual_seed(0)
    colors = torch.rand(1, len(scene["means"]), 3, generator=g)
    W, H = scene["width"], scene["height"]
    lists = {name: intersect(ext, m, W, H)[1:] for name, ext in exts.items()}
    args = {name: (m.means2d.contiguous(), m.conics.contiguous(), colors, m.opacities.contiguous(),
                   *lists[name], W, H, m.tile_size) for name in exts}  # fmt: skip
    v_render, v_alpha = torch.rand(1, H, W, 3, generator=g), torch.rand(1, H, W, 1, generator=g)
    name_of = {id(ext): name for name, ext in exts.items()}
    return alternate(exts, repeats, lambda ext: ext.blend_forward(*args[name_of[id(ext)]]),
                     lambda ext, out: ext.blend_backward(*args[name_of[id(ext)]], out[2], out[3], v_render, v_alpha,
                                                         False, *out[6:]))  # fmt: skip


def time_projection(exts: dict, case: str, repeats: int) -> dict:
    """Median projection forward and backward ms per extension (no pose gradient, as in training)."""
    from splat.cli.bench import make_case

    s = make_case(case, DATA)
    C, N = s["viewmats"].shape[0], len(s["means"])
    settings = (s["width"], s["height"], 0.3, 0.01, 1e10, False)
    first = next(iter(exts.values()))
    radii = first.project_forward(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], *settings)[0]
    g = torch.Generator().manual_seed(0)
    grads = (torch.randn(C, N, 2, generator=g), torch.randn(C, N, generator=g), torch.randn(C, N, 3, generator=g),
             torch.zeros(C, N))  # fmt: skip
    gaussians = (s["means"], s["quats"], s["scales"])
    return alternate(
        exts, repeats,
        lambda ext: ext.project_forward(*gaussians, s["opacities"], s["viewmats"], s["Ks"], *settings),
        lambda ext, _: ext.project_backward(*gaussians, s["viewmats"], s["Ks"], *settings, radii, *grads, False),
    )  # fmt: skip


def time_sh_and_intersection(exts: dict, case: str, repeats: int) -> dict:
    """Median ms of SH forward and backward (degree 3) and, as a third value, of
    tile intersection, per extension."""
    from splat.cli.bench import make_case
    from splat.rasterizer import rasterize

    s = make_case(case, DATA)
    with torch.no_grad():
        _, _, m = rasterize(**s, backend="cpu")
    means, viewmats = s["means"], s["viewmats"]
    coeffs = s["colors"] if s["colors"].dim() == 3 else torch.rand(len(means), 16, 3)
    dirs = (means[None] - torch.linalg.inv(viewmats)[:, None, :3, 3]).contiguous()
    v_colors = torch.randn(dirs.shape, generator=torch.Generator().manual_seed(0))
    W, H = s["width"], s["height"]

    def sh_forward(ext):  # the fused colors stage, or (older revisions) SH on given directions
        if not hasattr(ext, "sh_colors_forward"):
            return ext.sh_forward(3, dirs, coeffs)
        if "arg4: bool" in ext.sh_colors_forward.__doc__:  # with the direction Jacobian, as training asks
            return ext.sh_colors_forward(3, means, viewmats, coeffs, True)
        return ext.sh_colors_forward(3, means, viewmats, coeffs)  # revisions before it

    def sh_backward(ext, out):
        if hasattr(ext, "sh_colors_backward"):
            return ext.sh_colors_backward(3, means, viewmats, coeffs, out[1], v_colors, *out[2:])
        return ext.sh_backward(3, dirs, coeffs, v_colors)

    sh = alternate(exts, repeats, sh_forward, sh_backward)
    isect = alternate(exts, repeats, lambda ext: intersect(ext, m, W, H), lambda ext, _: None)
    return {name: (*sh[name], isect[name][0]) for name in exts}


def time_flow(exts: dict, case: str, blocks: int) -> dict:
    """Per extension, median ms of `splat bench raster`'s iteration
    (rasterize, then backward of colors.sum() + alphas.sum()) as "forward",
    "backward" and of each extension op inside it, the extensions swapped in
    the cpu backend in blocks of about 0.3 s, the order alternating."""
    from splat.cli.bench import make_case, time_iteration
    from splat.rasterizer import backend_cpu

    scene = make_case(case, DATA)

    def iteration(times: dict) -> None:
        forward_s, backward_s, _ = time_iteration(scene, "cpu")
        times.setdefault("forward", []).append(1e3 * forward_s)
        times.setdefault("backward", []).append(1e3 * backward_s)

    times = {name: {} for name in exts}
    warm: dict = {}
    backend_cpu._backend._load = lambda: next(iter(exts.values()))
    for _ in range(10):
        iteration(warm)
    per_block = max(3, int(300 / (median(warm["forward"][5:]) + median(warm["backward"][5:]))))
    for block in range(blocks + 1):  # block 0 warms up
        for name, ext in list(exts.items())[:: 1 if block % 2 else -1]:
            durations = times[name] if block else {}
            timed = StampedOps(ext, lambda op, t0, t1, d=durations: d.setdefault(op, []).append(1e3 * (t1 - t0)))
            backend_cpu._backend._load = lambda timed=timed: timed
            for _ in range(per_block):
                iteration(durations)
    return {name: {key: median(v) for key, v in t.items()} for name, t in times.items()}


def time_training(exts: dict, warmup: int, blocks: int = 6, steps: int = 10) -> dict:
    """Median ms per lego training step (`--preset full`) per extension, swapped in one trainer."""
    from splat.rasterizer import backend_cpu
    from splat.training import preset
    from splat.training.loop import Trainer

    trainer = Trainer(preset("full", data=str(DATA / "lego"), progress=False, output_dir="/tmp/splat_cpu_ab"))
    for _ in range(warmup):
        trainer.train_step()
    times = {name: [] for name in exts}
    for _ in range(blocks):
        for name, ext in exts.items():
            backend_cpu._backend._load = lambda ext=ext: ext
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            times[name].append(1e3 * (time.perf_counter() - t0) / steps)
    print(f"lego training, {len(trainer.params['means']):,} Gaussians after {warmup} steps")
    return {name: median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--cases", default="small,a,bird", help="splat bench raster cases")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads (1: kernel time)")
    parser.add_argument("--flow", action="store_true",
                        help="time whole bench iterations instead of the stages (both builds must bind the same ops)")
    parser.add_argument("--train-steps", type=int, default=0, help="also time lego training after this many steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    exts = {args.base: load_revision(args.base), "working tree": load_working_tree()}
    base, new = list(exts)
    print(f"{args.threads} thread(s); ms, median of {args.repeats}{' blocks' if args.flow else ''}")
    ops = [{name for name in dir(ext) if not name.startswith("_")} for ext in exts.values()]
    if args.flow:
        if ops[0] != ops[1]:
            print("iterations not timed: the two builds bind different ops")
            return
        for case in args.cases.split(","):
            r = time_flow(exts, case, args.repeats)
            for key in r[base]:
                b, n = r[base][key], r[new][key]
                print(f"{case:<6} {key + (' (iteration)' if key in ('forward', 'backward') else ''):<24} "
                      f"{b:8.3f} -> {n:8.3f} ({b / n:.2f}x)")
            b, n = (r[k]["forward"] + r[k]["backward"] for k in (base, new))
            print(f"{case:<6} {'total':<24} {b:8.3f} -> {n:8.3f} ({b / n:.3f}x)")
        return
    for case in args.cases.split(","):
        r = time_blend(exts, case, args.repeats)
        (fb, bb), (fn, bn) = r[base], r[new]
        print(f"{case:<6} blend      forward {fb:8.2f} -> {fn:8.2f} ({fb / fn:.2f}x)   "
              f"backward {bb:8.2f} -> {bn:8.2f} ({bb / bn:.2f}x)")
        r = time_projection(exts, case, args.repeats)
        (fb, bb), (fn, bn) = r[base], r[new]
        print(f"{case:<6} projection forward {fb:8.2f} -> {fn:8.2f} ({fb / fn:.2f}x)   "
              f"backward {bb:8.2f} -> {bn:8.2f} ({bb / bn:.2f}x)")
        r = time_sh_and_intersection(exts, case, args.repeats)
        (fb, bb, ib), (fn, bn, i_n) = r[base], r[new]
        print(f"{case:<6} SH (deg 3) forward {fb:8.2f} -> {fn:8.2f} ({fb / fn:.2f}x)   "
              f"backward {bb:8.2f} -> {bn:8.2f} ({bb / bn:.2f}x)")
        print(f"{case:<6} tile intersection  {ib:8.2f} -> {i_n:8.2f} ({ib / i_n:.2f}x)")
    if args.train_steps and ops[0] != ops[1]:
        print("training not timed: the two builds bind different ops (the Python side matches only the working tree)")
    elif args.train_steps:
        r = time_training(exts, args.train_steps)
        print(f"training step ms {r[base]:.1f} -> {r[new]:.1f} ({r[base] / r[new]:.2f}x)")


if __name__ == "__main__":
    main()
