"""Densification operations keep parameters and Adam state aligned; strategy behavior."""

from __future__ import annotations

import math

import pytest
import torch

from splat.training import ops
from splat.training.config import DefaultStrategyConfig, MCMCStrategyConfig
from splat.training.strategy_default import DefaultStrategy
from splat.training.strategy_mcmc import MCMCStrategy


def make_state(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    params = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(torch.randn(n, 3, generator=g)),
        "scales": torch.nn.Parameter(torch.log(torch.rand(n, 3, generator=g) * 0.1 + 0.01)),
        "quats": torch.nn.Parameter(torch.randn(n, 4, generator=g)),
        "opacities": torch.nn.Parameter(torch.logit(torch.rand(n, generator=g) * 0.8 + 0.1)),
        "sh0": torch.nn.Parameter(torch.randn(n, 1, 3, generator=g)),
        "shN": torch.nn.Parameter(torch.randn(n, 3, 3, generator=g)),
    })  # fmt: skip
    opts = {k: torch.optim.Adam([p], lr=1e-2) for k, p in params.items()}
    # one step with row-identifiable gradients so exp_avg rows differ per Gaussian
    for k, p in params.items():
        p.grad = torch.arange(1, n + 1, dtype=torch.float32).view(-1, *[1] * (p.dim() - 1)).expand_as(p).clone()
        opts[k].step()
    return params, opts


def exp_avg(opts, name):
    opt = opts[name]
    p = opt.param_groups[0]["params"][0]
    return opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]


def check_bound(params, opts):
    """The optimizer holds exactly the current parameter objects, with matching state shapes."""
    for name, p in params.items():
        group_p = opts[name].param_groups[0]["params"][0]
        assert group_p is p, name
        m, v = exp_avg(opts, name)
        assert m.shape == p.shape and v.shape == p.shape, name


def test_duplicate_appends_copies_with_zero_state():
    params, opts = make_state()
    before = {k: v.detach().clone() for k, v in params.items()}
    m0, _ = exp_avg(opts, "means")
    m0 = m0.clone()
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[2, 7]] = True
    ops.duplicate(params, opts, mask)
    check_bound(params, opts)
    assert len(params["means"]) == 14
    assert torch.equal(params["means"][12:], before["means"][[2, 7]])
    assert torch.equal(params["sh0"][:12], before["sh0"])
    m, v = exp_avg(opts, "means")
    assert torch.equal(m[:12], m0)  # old rows keep their state
    assert torch.all(m[12:] == 0) and torch.all(v[12:] == 0)


def test_split_moves_state_with_kept_gaussians():
    params, opts = make_state()
    before = {k: v.detach().clone() for k, v in params.items()}
    m0 = exp_avg(opts, "sh0")[0].clone()
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[0, 5, 6]] = True
    ops.split(params, opts, mask, torch.Generator().manual_seed(1))
    check_bound(params, opts)
    rest = torch.tensor([i for i in range(12) if i not in (0, 5, 6)])
    assert len(params["means"]) == 9 + 6
    assert torch.equal(params["means"][:9], before["means"][rest])
    assert torch.equal(exp_avg(opts, "sh0")[0][:9], m0[rest])  # values moved with their Gaussians
    assert torch.all(exp_avg(opts, "sh0")[0][9:] == 0)
    # children: scales / 1.6, same colors, centers spread around the parent
    assert torch.allclose(params["scales"][9:], (before["scales"][[0, 5, 6]] - math.log(1.6)).repeat(2, 1))
    assert torch.equal(params["sh0"][9:], before["sh0"][[0, 5, 6]].repeat(2, 1, 1))
    parent = before["means"][[0, 5, 6]].repeat(2, 1)
    d = (params["means"][9:] - parent).norm(dim=-1)
    assert torch.all(d > 0) and torch.all(d < 6 * torch.exp(before["scales"][[0, 5, 6]]).max(-1).values.repeat(2))


def test_remove_keeps_survivors_state():
    params, opts = make_state()
    before = params["opacities"].detach().clone()
    m0, v0 = (t.clone() for t in exp_avg(opts, "opacities"))
    mask = torch.tensor([i % 3 == 0 for i in range(12)])
    ops.remove(params, opts, mask)
    check_bound(params, opts)
    assert torch.equal(params["opacities"], before[~mask])
    m, v = exp_avg(opts, "opacities")
    assert torch.equal(m, m0[~mask]) and torch.equal(v, v0[~mask])


def test_optimizer_keeps_working_after_ops():
    params, opts = make_state()
    ops.duplicate(params, opts, torch.ones(12, dtype=torch.bool))
    ops.remove(params, opts, torch.arange(24) < 3)
    loss = sum((p**2).sum() for p in params.values())
    loss.backward()
    old = params["means"].detach().clone()
    for o in opts.values():
        o.step()
    assert not torch.equal(params["means"], old)


def test_reset_opacity_clamps_and_zeroes_state():
    params, opts = make_state()
    params["opacities"].data[0] = torch.logit(torch.tensor(0.001))
    ops.reset_opacity(params, opts, 0.01)
    check_bound(params, opts)
    o = torch.sigmoid(params["opacities"])
    assert torch.all(o <= 0.01 + 1e-6)
    assert abs(o[0].item() - 0.001) < 1e-6  # lower ones untouched
    m, v = exp_avg(opts, "opacities")
    assert torch.all(m == 0) and torch.all(v == 0)
    assert torch.any(exp_avg(opts, "means")[0] != 0)  # other params untouched


def test_default_strategy_refine_and_reset():
    params, opts = make_state(n=50)
    cfg = DefaultStrategyConfig(refine_start=0, refine_every=10, reset_every=20, refine_stop=1000)
    s = DefaultStrategy(cfg, scene_scale=1.0, generator=torch.Generator().manual_seed(0))
    params["opacities"].data[:5] = torch.logit(torch.tensor(0.001))  # pruned
    params["scales"].data[5:10] = math.log(0.001)  # small: cloned when the gradient is high
    params["scales"].data[10:15] = math.log(0.2)  # large: split

    class Meta:  # what the rasterizer returns, minimally
        width, height = 100, 100
        radii = torch.full((1, 50, 2), 3, dtype=torch.int32)
        means2d = torch.zeros(1, 50, 2)

    meta = Meta()
    meta.means2d.grad = torch.zeros(1, 50, 2)
    meta.means2d.grad[0, 5:15, 0] = 1e-3  # x 50 -> 0.05 NDC, far above 0.0002
    changed = s.step_post_backward(params, opts, 10, {"meta": meta, "n_cameras": 1})
    assert changed and s.last_stats == {"cloned": 5, "split": 5, "pruned": 5}
    assert len(params["means"]) == 50 + 5 + 5 - 5
    check_bound(params, opts)
    s.step_post_backward(params, opts, 20, {"meta": meta, "n_cameras": 1})
    assert torch.all(torch.sigmoid(params["opacities"]) <= 2 * cfg.prune_opa + 1e-6)


def test_relocation_preserves_rendered_opacity():
    o = torch.tensor([0.3, 0.8, 0.05, 0.99])
    s = torch.ones(4, 3)
    for n in (1, 2, 5, 20):
        new_o, new_s = ops.relocation_coefficients(o, s, torch.full((4,), n))
        # n copies composite to the original opacity
        assert torch.allclose(1 - (1 - new_o) ** n, o, atol=1e-5)
        if n == 1:
            assert torch.allclose(new_o, o) and torch.allclose(new_s, s, atol=1e-5)
        else:
            assert torch.all(new_o < o) and torch.all(new_s[:, 0] > 0)


def test_mcmc_relocate_dead_and_grow():
    params, opts = make_state(n=40)
    params["opacities"].data[:10] = torch.logit(torch.tensor(0.001))  # dead
    g = torch.Generator().manual_seed(0)
    m_before = exp_avg(opts, "means")[0].clone()
    n = ops.relocate(params, opts, torch.sigmoid(params["opacities"]) <= 0.005, g)
    assert n == 10
    check_bound(params, opts)
    o = torch.sigmoid(params["opacities"])
    assert torch.all(o >= 0.005 - 1e-6)
    # every relocated Gaussian sits exactly on a live one (same center and color)
    for i in range(10):
        same = (params["means"][10:] == params["means"][i]).all(-1)
        assert same.any()
        j = 10 + torch.where(same)[0][0]
        assert torch.equal(params["sh0"][i], params["sh0"][j])
        assert torch.all(exp_avg(opts, "means")[0][i] == 0) and torch.all(exp_avg(opts, "means")[0][j] == 0)
    untouched = [k for k in range(10, 40) if not (params["means"][:10] == params["means"][k]).all(-1).any()]
    assert untouched and torch.equal(exp_avg(opts, "means")[0][untouched], m_before[untouched])
    ops.sample_add(params, opts, 8, g)
    assert len(params["means"]) == 48
    check_bound(params, opts)

    s = MCMCStrategy(MCMCStrategyConfig(cap_max=45, refine_start=0, refine_every=10), g)
    s.step_post_backward(params, opts, 10, {})
    assert len(params["means"]) == 48  # already above the cap: no growth


def test_sgld_noise_moves_only_transparent_gaussians():
    params, _ = make_state(n=200)
    params["opacities"].data[:100] = torch.logit(torch.tensor(0.001))
    params["opacities"].data[100:] = torch.logit(torch.tensor(0.9))
    before = params["means"].detach().clone()
    ops.inject_noise(params, scale=100.0, generator=torch.Generator().manual_seed(0))
    moved = (params["means"] - before).norm(dim=-1)
    assert moved[:100].mean() > 1e-3
    assert moved[100:].max() < 1e-6 * max(1.0, moved[:100].mean().item())
    # noise is shaped by the covariance: std along axes ~ scale^2 * 100
    assert moved[:100].mean() < 100 * torch.exp(params["scales"][:100]).max() ** 2 * 10


@pytest.mark.parametrize("k", [1, 3])
def test_knn_scale_matches_brute_force(k):
    p = torch.rand(300, 3, generator=torch.Generator().manual_seed(0))
    d = torch.cdist(p, p).topk(k + 1, largest=False).values[:, 1:].mean(-1)
    assert torch.allclose(ops.knn_scale(p, k=k), d, atol=1e-5)


def _cameras(eyes, width=64, height=48):
    from splat import procedural
    from splat.datasets.cameras import Cameras

    viewmats = torch.stack([procedural.look_at(e) for e in eyes])
    Ks = procedural.intrinsics(width, height, fov_x_deg=60.0)[None].repeat(len(eyes), 1, 1)
    n = len(eyes)
    return Cameras(viewmats, Ks, torch.full((n,), width), torch.full((n,), height), [str(i) for i in range(n)])


def test_seen_by_any_frustum():
    cams = _cameras([(0.0, 0.0, 4.0)])  # looks down -z at the origin
    pts = torch.tensor([
        [0.0, 0.0, 0.0],  # center of the image
        [0.0, 0.0, 5.0],  # behind the camera
        [3.0, 0.0, 0.0],  # 37 deg off-axis: outside the 30 deg half field of view
        [1.5, 0.0, 0.0],  # 20.6 deg: inside
        [0.0, 1.5, 0.0],  # vertical half field of view is 23.4 deg: 20.6 deg is inside
        [0.0, 2.0, 0.0],  # 26.6 deg: outside vertically
    ])  # fmt: skip
    assert ops.seen_by_any(pts, cams).tolist() == [True, False, False, True, True, False]


def test_random_cube_points_only_where_cameras_look():
    eyes = [(4.0, 0.0, 0.0), (0.0, 0.0, 4.0), (-4.0, 0.0, 0.0)]
    cams = _cameras(eyes)
    g = torch.Generator().manual_seed(0)
    pts = ops.random_cube_points(cams, 5_000, half_size=0.7, generator=g)
    assert pts.shape == (5_000, 3)
    assert ops.seen_by_any(pts, cams).all()
    # focus is the origin, mean camera distance 4: the cube has half-size 2.8
    assert pts.abs().max() <= 2.8 + 1e-5 and pts.abs().max() > 2.0
    # a plain cube that large has corners no camera sees; those were redrawn
    plain = 2.8 * (torch.rand(5_000, 3, generator=g) * 2 - 1)
    assert (~ops.seen_by_any(plain, cams)).sum() > 500
