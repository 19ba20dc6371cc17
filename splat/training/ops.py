"""Operations that change the set of Gaussians while keeping Adam's state aligned.

`params` is a `torch.nn.ParameterDict` (gsplat names: means, scales, quats,
opacities, sh0, shN, plus any other per-Gaussian parameter); `optimizers` maps
the same names to one optimizer each. Every op replaces the parameters and moves
the optimizer's per-parameter state (exp_avg, exp_avg_sq) with its Gaussians:
copied rows keep their state (or get zeros, as gsplat does for new rows).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from splat.rasterizer.reference import quat_to_rotmat

ParamFn = Callable[[str, Tensor], Tensor]
StateFn = Callable[[str, Tensor], Tensor]


@torch.no_grad()
def update_params(params: torch.nn.ParameterDict, optimizers: dict, param_fn: ParamFn, state_fn: StateFn,
                  names: list[str] | None = None) -> None:
    """Replace params[name] by param_fn(name, p) and each optimizer state tensor v
    (same leading size) by state_fn(name, v)."""
    for name in names if names is not None else list(params.keys()):
        old = params[name]
        new = torch.nn.Parameter(param_fn(name, old.data), requires_grad=old.requires_grad)
        opt = optimizers.get(name)
        if opt is not None:
            for group in opt.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is not old:
                        continue
                    state = opt.state.pop(p, {})
                    for key, v in list(state.items()):
                        if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == old.shape[0]:
                            state[key] = state_fn(name, v)
                    group["params"][i] = new
                    opt.state[new] = state
        params[name] = new


def duplicate(params, optimizers, mask: Tensor) -> None:
    """Clone the selected Gaussians (appended at the end; their Adam state starts at zero)."""
    sel = torch.where(mask)[0]
    update_params(params, optimizers,
                  lambda _, p: torch.cat([p, p[sel]]),
                  lambda _, v: torch.cat([v, torch.zeros((len(sel), *v.shape[1:]), dtype=v.dtype, device=v.device)]))


def split(params, optimizers, mask: Tensor, generator: torch.Generator | None = None,
          revised_opacity: bool = False) -> None:
    """Replace each selected Gaussian by two samples from it, scales divided by 1.6.

    Unselected Gaussians keep their order and state; the 2k new ones go at the end
    with zero Adam state (gsplat's convention).
    """
    sel, rest = torch.where(mask)[0], torch.where(~mask)[0]
    scales = torch.exp(params["scales"][sel])
    rot = quat_to_rotmat(params["quats"][sel])
    noise = torch.randn((2, len(sel), 3), generator=generator, device=scales.device)
    samples = torch.einsum("nij,bnj->bni", rot, scales[None] * noise)  # [2, k, 3]

    def param_fn(name: str, p: Tensor) -> Tensor:
        if name == "means":
            new = (p[sel][None] + samples).reshape(-1, 3)
        elif name == "scales":
            new = torch.log(scales / 1.6).repeat(2, 1)
        elif name == "opacities" and revised_opacity:
            new = torch.logit(1.0 - torch.sqrt(1.0 - torch.sigmoid(p[sel]))).repeat(2)
        else:
            new = p[sel].repeat(2, *[1] * (p.dim() - 1))
        return torch.cat([p[rest], new])

    def state_fn(_, v: Tensor) -> Tensor:
        return torch.cat([v[rest], torch.zeros((2 * len(sel), *v.shape[1:]), dtype=v.dtype, device=v.device)])

    update_params(params, optimizers, param_fn, state_fn)


def remove(params, optimizers, mask: Tensor) -> None:
    """Delete the selected Gaussians (and their optimizer state)."""
    keep = torch.where(~mask)[0]
    update_params(params, optimizers, lambda _, p: p[keep], lambda _, v: v[keep])


def reset_opacity(params, optimizers, value: float) -> None:
    """Clamp every opacity to at most `value` and zero the opacity optimizer state."""
    limit = torch.logit(torch.tensor(value)).item()
    update_params(params, optimizers,
                  lambda _, p: torch.clamp(p, max=limit), lambda _, v: torch.zeros_like(v),
                  names=["opacities"])


# --- MCMC ---------------------------------------------------------------------------------


def relocation_coefficients(opacities: Tensor, scales: Tensor, ratios: Tensor, n_max: int = 51):
    """New opacity and scale for a Gaussian copied into `ratios` Gaussians (3DGS-MCMC, eq. 9).

    The N copies' rendered sum matches the original: 1 - (1 - o')^N = o, and scales are
    scaled by o / sum_{k=1..N} C(N, k) (-1)^(k-1) o'^k / sqrt(k).
    """
    ratios = ratios.clamp(1, n_max).to(torch.float64)
    o = opacities.to(torch.float64)
    new_o = 1.0 - torch.pow(1.0 - o, 1.0 / ratios)
    k = torch.arange(1, n_max + 1, dtype=torch.float64, device=o.device)  # [K]
    log_binom = torch.lgamma(ratios[:, None] + 1) - torch.lgamma(k + 1) - torch.lgamma(ratios[:, None] - k + 1).nan_to_num(0)
    valid = k[None] <= ratios[:, None]
    binom = torch.where(valid, torch.exp(torch.where(valid, log_binom, 0.0)), 0.0)
    sign = torch.where(k % 2 == 1, 1.0, -1.0)
    denom = (binom * sign * new_o[:, None] ** k / torch.sqrt(k)).sum(-1)
    coeff = o / denom
    return new_o.to(opacities.dtype), (coeff[:, None] * scales.to(torch.float64)).to(scales.dtype)


def _sample(probs: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    return torch.multinomial(probs, n, replacement=True, generator=generator)


def _sample_sources(params, candidates: Tensor, n: int, generator, min_opacity: float):
    """n source Gaussians drawn from `candidates` by opacity, and the opacity
    logits / log-scales every source gets once it is shared with its copies."""
    opac = torch.sigmoid(params["opacities"])
    sampled = candidates[_sample(opac[candidates], n, generator)]
    ratios = torch.bincount(sampled, minlength=len(opac))[sampled] + 1
    new_o, new_s = relocation_coefficients(opac[sampled], torch.exp(params["scales"][sampled]), ratios)
    new_o = new_o.clamp(min=min_opacity, max=1.0 - torch.finfo(new_o.dtype).eps)
    return sampled, {"opacities": torch.logit(new_o), "scales": torch.log(new_s)}


def _shared(name: str, p: Tensor, sampled: Tensor, updates: dict[str, Tensor]) -> Tensor:
    """A copy of parameter `p` with the sources' opacity and scale updated."""
    p = p.clone()
    if name in updates:
        p[sampled] = updates[name]
    return p


def relocate(params, optimizers, dead: Tensor, generator: torch.Generator | None = None,
             min_opacity: float = 0.005) -> int:
    """Move dead Gaussians (mask) onto live ones sampled by opacity; returns how many."""
    dead_idx, alive_idx = torch.where(dead)[0], torch.where(~dead)[0]
    n = len(dead_idx)
    if n == 0 or len(alive_idx) == 0:
        return 0
    sampled, updates = _sample_sources(params, alive_idx, n, generator, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = _shared(name, p, sampled, updates)
        p[dead_idx] = p[sampled]
        return p

    def state_fn(_, v: Tensor) -> Tensor:
        v = v.clone()
        v[sampled] = 0
        v[dead_idx] = 0
        return v

    update_params(params, optimizers, param_fn, state_fn)
    return n


def sample_add(params, optimizers, n: int, generator: torch.Generator | None = None,
               min_opacity: float = 0.005) -> int:
    """Append n Gaussians copied from live ones sampled by opacity (opacity/scale adjusted)."""
    if n <= 0:
        return 0
    everyone = torch.arange(len(params["opacities"]), device=params["opacities"].device)
    sampled, updates = _sample_sources(params, everyone, n, generator, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = _shared(name, p, sampled, updates)
        return torch.cat([p, p[sampled]])

    def state_fn(_, v: Tensor) -> Tensor:
        v = v.clone()
        v[sampled] = 0
        return torch.cat([v, torch.zeros((n, *v.shape[1:]), dtype=v.dtype, device=v.device)])

    update_params(params, optimizers, param_fn, state_fn)
    return n


@torch.no_grad()
def inject_noise(params, scale: float, generator: torch.Generator | None = None) -> None:
    """SGLD step: move means by covariance-shaped noise, strong for low-opacity Gaussians."""
    opac = torch.sigmoid(params["opacities"])
    scales = torch.exp(params["scales"])
    rot = quat_to_rotmat(params["quats"])
    gate = torch.sigmoid(100.0 * ((1.0 - opac) - 0.995))  # ~1 for opacity < 0.005, ~0 above
    noise = torch.randn(params["means"].shape, generator=generator, device=opac.device) * gate[:, None] * scale
    cov = rot @ torch.diag_embed(scales**2) @ rot.transpose(1, 2)
    params["means"].add_(torch.einsum("nij,nj->ni", cov, noise))


def knn_scale(points: Tensor, k: int = 3, chunk: int = 4096) -> Tensor:
    """Mean distance to the k nearest neighbours (for the initial scales), [P]."""
    n = points.shape[0]
    if n <= 1:
        return torch.ones(n)
    try:  # Open3D's vectorized KD-tree search is much faster than the brute force below
        import open3d as o3d

        pts = o3d.core.Tensor(points.detach().float().cpu().contiguous().numpy())
        nns = o3d.core.nns.NearestNeighborSearch(pts)
        nns.knn_index()
        _, d2 = nns.knn_search(pts, min(k + 1, n))
        d2 = torch.from_numpy(d2.numpy().copy()).double()
        return d2[:, 1:].clamp(min=0).sqrt().mean(-1).float()
    except ImportError:
        pass
    out = torch.empty(n)
    for s in range(0, n, chunk):
        d = torch.cdist(points[s:s + chunk], points)
        out[s:s + chunk] = d.topk(min(k + 1, n), largest=False).values[:, 1:].mean(-1)
    return out


def scene_extent(camera_centers: Tensor) -> float:
    """gsplat's scene scale: 1.1 x the largest camera distance from the mean camera center."""
    c = camera_centers.double()
    return 1.1 * float(torch.linalg.norm(c - c.mean(0), dim=-1).max().clamp(min=1e-6))


def seen_by_any(points: Tensor, cameras, near: float = 0.01) -> Tensor:
    """Whether each point [P, 3] projects inside at least one camera's image, [P] bool."""
    seen = torch.zeros(len(points), dtype=torch.bool)
    for i in range(len(cameras)):
        uv, depth = cameras.project(points, i)  # [P, 2], [P]; uv is not finite at depth 0
        inside = (uv >= 0).all(-1) & (uv[:, 0] < float(cameras.widths[i])) & (uv[:, 1] < float(cameras.heights[i]))
        seen |= (depth > near) & inside
    return seen


def random_cube_points(cameras, n: int, half_size: float, generator: torch.Generator, max_rounds: int = 20) -> Tensor:
    """n points uniform in a cube around the cameras' focus point, [n, 3].

    The cube's half-size is `half_size` x the mean camera-to-focus distance. Points
    that no camera sees are redrawn: they would never get a gradient, and later
    views (test or novel) would find them as floaters.
    """
    from splat.training.render_path import focus_point

    focus = torch.tensor(focus_point(cameras), dtype=torch.float32)
    half = half_size * float((cameras.centers.float() - focus).norm(dim=-1).mean())

    def draw(k: int) -> Tensor:  # [k, 3]
        return focus + half * (torch.rand(k, 3, generator=generator) * 2 - 1)

    kept: list[Tensor] = []
    for _ in range(max_rounds):
        pts = draw(n)
        kept.append(pts[seen_by_any(pts, cameras)])
        if sum(len(k) for k in kept) >= n:
            break
    pts = torch.cat(kept)[:n]
    if len(pts) < n:  # cameras see almost none of the cube: fall back to the plain cube
        pts = torch.cat([pts, draw(n - len(pts))])
    return pts


__all__ = ["update_params", "duplicate", "split", "remove", "reset_opacity", "relocate", "sample_add",
           "inject_noise", "relocation_coefficients", "knn_scale", "scene_extent", "seen_by_any", "random_cube_points"]
