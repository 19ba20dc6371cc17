"""Tile intersection with the reach test: a Gaussian is listed only in the
tiles of its bounding rectangle whose pixel centers its alpha >= 1/255 region
can reach.

The oracle is brute force in float64 over each tile of the rectangle. A tile
where some pixel center has alpha >= ALPHA_MIN must be kept (else the render
changes). The test works on the continuous box spanned by the tile's pixel
centers, so a tile must be dropped when alpha stays below ALPHA_MIN on a fine
grid over that box, less the margin allowed for float rounding (see
`margin_factor`) and the grid's spacing. Between the two the margin decides.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from splat.rasterizer import reference
from splat.rasterizer.constants import ALPHA_MIN

TILE = 16


def stages_for(backend: str, request):
    if backend == "cpu":
        return request.getfixturevalue("cpu_backend")
    return reference


def tile_pairs(offsets: torch.Tensor, flatten_ids: torch.Tensor) -> torch.Tensor:
    """[M, 2] (global tile, flat Gaussian id) per list entry, in list order."""
    starts = offsets.flatten().long()
    counts = torch.diff(starts, append=torch.tensor([flatten_ids.numel()]))
    tiles = torch.repeat_interleave(torch.arange(starts.numel()), counts)
    return torch.stack([tiles, flatten_ids.long()], dim=1)


def max_tile_alpha(pairs, means2d, conics, opacities, tile_w, tile_h, grid: int = TILE) -> torch.Tensor:
    """Largest alpha (unclamped, float64) of each (tile, Gaussian) pair over a
    grid x grid lattice spanning the tile's pixel centers (grid = TILE: the pixel centers)."""
    tile, gid = pairs[:, 0], pairs[:, 1]
    local = tile % (tile_w * tile_h)
    x0 = (local % tile_w).double() * TILE
    y0 = (local // tile_w).double() * TILE
    offs = torch.linspace(0.5, TILE - 0.5, grid, dtype=torch.float64)
    m = means2d.reshape(-1, 2)[gid].double()
    a, b, c = (v[:, None, None] for v in conics.reshape(-1, 3)[gid].double().unbind(-1))
    dx = m[:, 0, None, None] - (x0[:, None, None] + offs[None, None, :])  # [P, 1, grid]
    dy = m[:, 1, None, None] - (y0[:, None, None] + offs[None, :, None])  # [P, grid, 1]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = opacities.reshape(-1)[gid].double()[:, None, None] * torch.exp(-sigma)
    alpha = torch.where(sigma >= 0, alpha, 0.0)
    return alpha.flatten(1).amax(dim=1)


def margin_factor(conics: Tensor, opacities: Tensor) -> Tensor:
    """alpha at the edge of the widened region over ALPHA_MIN, over 1.05 for the
    grid's spacing: s' = s (1.002 + 2e-6 a c / det) + 0.002 (blend.h, reach_sigma)."""
    a, b, c = conics.reshape(-1, 3).double().unbind(-1)
    s = torch.log(opacities.reshape(-1).double() / ALPHA_MIN)
    widened = s * (1.002 + 2e-6 * a * c / (a * c - b * b)) + 0.002
    return torch.exp(s - widened) / 1.05


def thin_scene(n: int, seed: int, width: int = 150, height: int = 110) -> dict:
    """Elongated Gaussians at random angles: their rectangles hold many tiles they miss."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.8, 0.6, 0.3]) + torch.tensor([0.0, 0.0, 4.0])
    scales = torch.rand(n, 3, generator=g) * torch.tensor([0.5, 0.02, 0.02]) + 0.005
    f = 1.1 * width
    Ks = torch.tensor([[[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]])
    return dict(
        means=means, quats=torch.randn(n, 4, generator=g), scales=scales,
        opacities=torch.rand(n, generator=g) * 0.95 + 0.02, viewmats=torch.eye(4)[None], Ks=Ks,
        width=width, height=height,
    )  # fmt: skip


# (150 x 110, 300 Gaussians): rectangles of 1 to ~60 tiles, in 18 full blocks of
# 16 (the CPU's vector path) and a tail of 12; (480 x 360): up to ~500 tiles
SCENES = {"small": dict(n=300, seed=7), "large": dict(n=120, seed=8, width=480, height=360)}


@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("scene", ["small", "large"])
def test_culled_lists_keep_every_reached_tile_and_drop_the_rest(backend, antialiased, scene, request):
    stages = stages_for(backend, request)
    s = thin_scene(**SCENES[scene])
    W, H = s["width"], s["height"]
    tw, th = math.ceil(W / TILE), math.ceil(H / TILE)
    radii, means2d, depths, conics, comp = reference.project_gaussians(
        s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], W, H, antialiased=antialiased
    )
    opac = s["opacities"][None] * comp if antialiased else s["opacities"][None].expand_as(depths)
    full = stages.intersect_tiles(means2d, radii, depths, TILE, tw, th)
    culled = stages.intersect_tiles(means2d, radii, depths, TILE, tw, th, conics, opac)

    all_pairs = tile_pairs(full[1], full[2])
    kept_pairs = tile_pairs(culled[1], culled[2])
    key = lambda p: p[:, 0] * (1 << 32) + p[:, 1]  # noqa: E731
    kept = torch.isin(key(all_pairs), key(kept_pairs))
    assert len(kept_pairs) == int(kept.sum()), "culled list has pairs outside the rectangles"
    # list order: the culled list is the full one with entries removed
    assert torch.equal(all_pairs[kept], kept_pairs)

    peak = max_tile_alpha(all_pairs, means2d, conics, opac, tw, th)
    assert (peak[~kept] < ALPHA_MIN).all(), "dropped a tile where the Gaussian reaches alpha >= 1/255"
    peak_box = max_tile_alpha(all_pairs, means2d, conics, opac, tw, th, grid=4 * TILE)
    clear_miss = peak_box < ALPHA_MIN * margin_factor(conics, opac)[all_pairs[:, 1]]
    assert not kept[clear_miss].any(), "kept a tile the Gaussian clearly misses"
    assert (~kept).sum() > 0.3 * len(all_pairs)  # thin Gaussians: much of the rectangles is empty
    areas = full[0][full[0] > 0]
    if scene == "large":  # the CPU's paths: bits from a block, bits one by one, no bits
        assert (areas <= 32).any() and ((areas > 32) & (areas <= 64)).any() and (areas > 64).any()
    assert torch.equal(culled[0].flatten().long(), torch.bincount(kept_pairs[:, 1], minlength=depths.numel()))


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_degenerate_conic_keeps_the_whole_rectangle(backend, request):
    stages = stages_for(backend, request)
    means2d = torch.tensor([[[40.0, 40.0], [40.0, 40.0]]])
    radii = torch.tensor([[[30, 30], [30, 30]]], dtype=torch.int32)
    depths = torch.tensor([[1.0, 2.0]])
    conics = torch.tensor([[[1.0, 2.0, 1.0], [0.0, 0.0, 0.0]]])  # det < 0, det = 0
    opac = torch.tensor([[0.9, 0.9]])
    counts, _, ids = stages.intersect_tiles(means2d, radii, depths, TILE, 5, 5, conics, opac)
    assert counts.tolist() == [[25, 25]]  # tiles 0..4 in x and y: ceil(70 / 16) = 5
    assert ids.numel() == 50


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_diagonal_gaussian_is_listed_along_its_diagonal(backend, request):
    """A thin Gaussian on the diagonal of a 4 x 4 tile image: the diagonal tiles and,
    where the line passes a tile corner, the two neighbors whose pixels it grazes."""
    stages = stages_for(backend, request)
    var_major, var_minor = 400.0, 0.25
    rot = torch.tensor([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2.0)
    cov = rot @ torch.diag(torch.tensor([var_major, var_minor])) @ rot.T
    inv = torch.linalg.inv(cov)
    conics = torch.tensor([[[inv[0, 0], inv[0, 1], inv[1, 1]]]])
    means2d = torch.tensor([[[32.0, 32.0]]])
    radii = torch.tensor([[[40, 40]]], dtype=torch.int32)
    counts, offsets, ids = stages.intersect_tiles(
        means2d, radii, torch.tensor([[1.0]]), TILE, 4, 4, conics, torch.tensor([[1.0]])
    )
    tiles = sorted(tile_pairs(offsets, ids)[:, 0].tolist())
    peak = max_tile_alpha(torch.stack([torch.arange(16), torch.zeros(16, dtype=torch.long)], 1), means2d, conics,
                          torch.tensor([1.0]), 4, 4)  # fmt: skip
    assert tiles == sorted(torch.nonzero(peak >= ALPHA_MIN).flatten().tolist())
    assert {0, 5, 10, 15} <= set(tiles) and len(tiles) < 16


def test_cpu_lists_do_not_depend_on_the_thread_count(cpu_backend):
    s = thin_scene(**SCENES["large"])
    W, H = s["width"], s["height"]
    radii, means2d, depths, conics, _ = reference.project_gaussians(
        s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], W, H
    )
    opac = s["opacities"][None].expand_as(depths)
    args = (means2d, radii, depths, TILE, math.ceil(W / TILE), math.ceil(H / TILE), conics, opac)
    ext = cpu_backend.load_extension()
    threads, default_work = torch.get_num_threads(), ext.set_min_parallel_work_ns(0.0)  # parallel however small
    try:
        torch.set_num_threads(1)
        one = cpu_backend.intersect_tiles(*args)
        torch.set_num_threads(2)
        two = cpu_backend.intersect_tiles(*args)
    finally:
        torch.set_num_threads(threads)
        ext.set_min_parallel_work_ns(default_work)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scene", ["small", "large"])
def test_cuda_lists_match_the_oracle(scene):
    from splat.rasterizer import backend_cuda

    s = thin_scene(**SCENES[scene])
    W, H = s["width"], s["height"]
    tw, th = math.ceil(W / TILE), math.ceil(H / TILE)
    radii, means2d, depths, conics, _ = reference.project_gaussians(
        s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], W, H
    )
    opac = s["opacities"][None].expand_as(depths).contiguous()
    full = reference.intersect_tiles(means2d, radii, depths, TILE, tw, th)
    gpu = backend_cuda.intersect_tiles(
        means2d.cuda(), radii.cuda(), depths.cuda(), TILE, tw, th, conics.cuda(), opac.cuda()
    )
    counts, offsets, ids = (x.cpu() for x in gpu)
    all_pairs, kept_pairs = tile_pairs(full[1], full[2]), tile_pairs(offsets, ids)
    kept = torch.isin(all_pairs[:, 0] * (1 << 32) + all_pairs[:, 1], kept_pairs[:, 0] * (1 << 32) + kept_pairs[:, 1])
    assert torch.equal(all_pairs[kept], kept_pairs)
    peak = max_tile_alpha(all_pairs, means2d, conics, opac, tw, th)
    assert (peak[~kept] < ALPHA_MIN).all()
    peak_box = max_tile_alpha(all_pairs, means2d, conics, opac, tw, th, grid=4 * TILE)
    assert not kept[peak_box < ALPHA_MIN * margin_factor(conics, opac)[all_pairs[:, 1]]].any()
    assert torch.equal(counts.flatten().long(), torch.bincount(kept_pairs[:, 1], minlength=depths.numel()))
