"""Our CUDA rasterizer vs gsplat's, on the same Gaussians, in one run.

    python benchmarks/cuda_vs_gsplat.py [--n 1000000] [--width 1920] [--height 1080] [--sh-degree 3] [--iters 20]

Both renderers get the same tensors: gsplat 1.5.3 `gsplat.rasterization`
(rasterize_mode="classic", packed=False) and `splat.rasterizer.rasterize`
(backend="cuda"), tile size 16, eps2d 0.3, same near/far planes. Times the
whole forward (projection, SH, tile sort, blending) and the backward of a
fixed random weighting of the image, in milliseconds (median over --iters
runs after warm-up, CUDA events), at the requested size and a smaller case
(100k Gaussians at 960x540), and prints ours / gsplat per pass.

Also prints the largest difference between the two images, as a sanity check
that both rendered the same thing (the semantics match gsplat's classic mode
but our opacity-aware radii can skip a few near-transparent fringes).
Exits with status 2 and a message when no GPU or no gsplat is available.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

import torch


@dataclass
class Case:
    n: int
    width: int
    height: int


def make_gaussians(n: int, sh_degree: int, seed: int = 0) -> dict:
    """A cloud in front of the camera, sized so that a 1080p frame has a few
    tens of millions of tile intersections, like a trained outdoor scene."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    means = torch.randn(n, 3, device="cuda", generator=g) * torch.tensor([2.0, 1.2, 1.5], device="cuda")
    means[:, 2] += 6.0
    scales = torch.exp(torch.randn(n, 3, device="cuda", generator=g) * 0.5 - 4.5)
    return dict(
        means=means,
        quats=torch.randn(n, 4, device="cuda", generator=g),
        scales=scales,
        opacities=torch.rand(n, device="cuda", generator=g) * 0.9 + 0.05,
        colors=torch.randn(n, (sh_degree + 1) ** 2, 3, device="cuda", generator=g) * 0.3,
    )


def camera(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    f = 0.8 * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], device="cuda")
    return torch.eye(4, device="cuda")[None], K[None]


def render_ours(g, viewmats, Ks, width, height, sh_degree):
    from splat.rasterizer import rasterize

    render, alphas, _ = rasterize(
        g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], viewmats, Ks, width, height,
        sh_degree=sh_degree, tile_size=16, backend="cuda",
    )  # fmt: skip
    return render, alphas


def render_gsplat(g, viewmats, Ks, width, height, sh_degree):
    import gsplat

    render, alphas, _ = gsplat.rasterization(
        g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], viewmats, Ks, width, height,
        sh_degree=sh_degree, packed=False, tile_size=16, rasterize_mode="classic", eps2d=0.3,
        near_plane=0.01, far_plane=1e10,
    )  # fmt: skip
    return render, alphas


def time_ms(fn, iters: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def bench(renderer, base: dict, case: Case, sh_degree: int, iters: int) -> tuple[float, float, torch.Tensor]:
    """(forward ms, backward ms, image) for one renderer."""
    viewmats, Ks = camera(case.width, case.height)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in base.items()}
    weight = torch.rand(1, case.height, case.width, 3, device="cuda", generator=torch.Generator("cuda").manual_seed(1))

    def forward():
        with torch.no_grad():
            return renderer(leaves, viewmats, Ks, case.width, case.height, sh_degree)

    fwd = time_ms(forward, iters)

    state = {}

    def prepare():  # forward outside the timed region
        for v in leaves.values():
            v.grad = None
        render, alphas = renderer(leaves, viewmats, Ks, case.width, case.height, sh_degree)
        state["loss"] = (render * weight).sum() + alphas.sum()

    times = []
    for i in range(iters + 3):
        prepare()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        state["loss"].backward()
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    image = forward()[0].detach()
    return fwd, statistics.median(times), image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--sh-degree", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("cuda_vs_gsplat: needs a CUDA GPU (torch.cuda.is_available() is False); nothing to measure", file=sys.stderr)
        return 2
    try:
        import gsplat
    except ImportError:
        print("cuda_vs_gsplat: gsplat is not installed (pip install gsplat==1.5.3)", file=sys.stderr)
        return 2

    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, gsplat {gsplat.__version__}")
    print("first use compiles both CUDA extensions (several minutes)", flush=True)
    cases = [Case(100_000, 960, 540), Case(args.n, args.width, args.height)]
    print(f"{'case':>22} | {'pass':>8} | {'ours ms':>9} | {'gsplat ms':>9} | {'ours/gsplat':>11}")
    for case in cases:
        base = make_gaussians(case.n, args.sh_degree)
        ours_f, ours_b, ours_img = bench(render_ours, base, case, args.sh_degree, args.iters)
        gs_f, gs_b, gs_img = bench(render_gsplat, base, case, args.sh_degree, args.iters)
        label = f"{case.n:,} @ {case.width}x{case.height}"
        for name, a, b in (("forward", ours_f, gs_f), ("backward", ours_b, gs_b)):
            print(f"{label:>22} | {name:>8} | {a:9.2f} | {b:9.2f} | {a / b:11.2f}")
        diff = (ours_img - gs_img).abs()
        print(f"{'':>22}   image difference vs gsplat: max {diff.max().item():.2e}, mean {diff.mean().item():.2e}")
        del base
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
