"""Pure-PyTorch reference rasterizer: the oracle the compiled backends are tested against.

One function per stage, named like the kernels that mirror it:
`project_gaussians`, `sh_colors` (over `spherical_harmonics`), `intersect_tiles`,
`blend`.
Gradients come from autograd. Everything works in float32 or float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from splat.rasterizer.constants import ALPHA_MAX, ALPHA_MIN, FOV_CLAMP, RADIUS_SIGMA, T_MIN

NAME = "torch"


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Normalized rotation matrices from (w, x, y, z) quaternions. [N, 4] -> [N, 3, 3]."""
    w, x, y, z = torch.unbind(quats / quats.norm(dim=-1, keepdim=True), dim=-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariances R S S^T R^T. [N, 4], [N, 3] -> [N, 3, 3]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]  # R @ diag(s)
    return m @ m.transpose(-1, -2)


def _safe_sqrt(x: Tensor) -> Tensor:
    # sqrt with a zero (not NaN) gradient where x <= 0
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor | None,  # [N]; None: plain 3.33-sigma extent
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """EWA splatting of 3D Gaussians into each camera.

    Returns radii [C, N, 2] int32 (0 = culled), means2d [C, N, 2], depths [C, N],
    conics [C, N, 3] (upper triangle of the inverse 2D covariance) and
    compensations [C, N] (sqrt(det(cov) / det(cov + eps2d I)), the opacity
    factor that keeps the dilated Gaussian's energy in antialiased mode).
    """
    R = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    t = viewmats[:, None, :3, 3]  # [C, 1, 3]
    means_c = (R @ means[None, :, :, None])[..., 0] + t  # [C, N, 3]
    covars_c = R @ quat_scale_to_covar(quats, scales)[None] @ R.transpose(-1, -2)  # [C, N, 3, 3]

    x, y, z = torch.unbind(means_c, dim=-1)  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Evaluate the Jacobian no further out than FOV_CLAMP x the field of view:
    # far off-screen Gaussians otherwise get huge, unstable 2D footprints.
    slack = FOV_CLAMP - 1.0
    lim_x_pos = (width - cx) / fx + slack * 0.5 * width / fx
    lim_x_neg = cx / fx + slack * 0.5 * width / fx
    lim_y_pos = (height - cy) / fy + slack * 0.5 * height / fy
    lim_y_neg = cy / fy + slack * 0.5 * height / fy
    tx = z * torch.clamp(x / z, min=-lim_x_neg, max=lim_x_pos)
    ty = z * torch.clamp(y / z, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / z**2, zero, fy / z, -fy * ty / z**2], dim=-1)
    J = J.reshape(z.shape + (2, 3))  # [C, N, 2, 3]
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)  # [C, N, 2]

    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    valid = (det > 0) & (z > near_plane) & (z < far_plane)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)  # [C, N, 3]
    compensations = _safe_sqrt(det_orig / safe_det)  # [C, N]

    with torch.no_grad():
        extend = torch.full_like(z, RADIUS_SIGMA)
        if opacities is not None:
            op = opacities[None].expand_as(z) * (compensations if antialiased else 1.0)
            valid = valid & (op >= ALPHA_MIN)
            # Opacity-aware extent: beyond it, alpha < ALPHA_MIN anyway.
            ext = torch.sqrt(2.0 * torch.log(op.clamp(min=ALPHA_MIN) / ALPHA_MIN))
            extend = torch.minimum(extend, ext)
        radius = torch.stack(
            [torch.ceil(extend * torch.sqrt(a.clamp(min=0))), torch.ceil(extend * torch.sqrt(c.clamp(min=0)))],
            dim=-1,
        )  # [C, N, 2]
        valid = valid & (radius > 0).any(dim=-1)
        inside = (
            (means2d[..., 0] + radius[..., 0] > 0)
            & (means2d[..., 0] - radius[..., 0] < width)
            & (means2d[..., 1] + radius[..., 1] > 0)
            & (means2d[..., 1] - radius[..., 1] < height)
        )
        valid = valid & inside
        radii = torch.where(valid[..., None], radius, 0).to(torch.int32)
    return radii, means2d, z, conics, compensations


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Color from real SH coefficients, un-normalized view directions.

    dirs [..., 3], coeffs [..., K, D] with K >= (degree + 1)^2 -> [..., D].
    Same basis and signs as the 3DGS reference (Sloan's fast evaluation).
    """
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    x, y, z = torch.unbind(d, dim=-1)
    basis = [torch.full_like(x, 0.28209479177387814)]
    if degree >= 1:
        basis += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree >= 2:
        x2, y2, z2 = x * x, y * y, z * z
        basis += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.94617469575756008 * z2 - 0.31539156525252005,
            -1.0925484305920792 * x * z,
            0.54627421529603959 * (x2 - y2),
        ]
    if degree >= 3:
        basis += [
            0.59004358992664352 * y * (-3.0 * x2 + y2),
            2.8906114426405538 * x * y * z,
            0.45704579946446572 * y * (1.0 - 5.0 * z2),
            0.3731763325901154 * z * (5.0 * z2 - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * z2),
            1.4453057213202769 * z * (x2 - y2),
            0.59004358992664352 * x * (-x2 + 3.0 * y2),
        ]
    basis = torch.stack(basis, dim=-1)  # [..., (degree+1)^2]
    return (basis[..., None] * coeffs[..., : basis.shape[-1], :]).sum(dim=-2)


def camera_centers(viewmats: Tensor) -> Tensor:
    """World positions [C, 3] of world-to-camera viewmats [C, 4, 4] [R t; 0 0 0 1]:
    -R^-1 t (only the top three rows are read)."""
    return -torch.linalg.solve(viewmats[:, :3, :3], viewmats[:, :3, 3:])[..., 0]


def sh_colors(degree: int, means: Tensor, viewmats: Tensor, coeffs: Tensor) -> Tensor:
    """3DGS view-dependent colors [C, N, 3]: the SH (coeffs [N, K, 3]) at the
    direction from each camera center to the Gaussian (means [N, 3]), + 0.5,
    clamped at 0."""
    dirs = means[None] - camera_centers(viewmats)[:, None]  # [C, N, 3]
    return torch.clamp_min(spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)


def _reach_sigma(conics: Tensor, opacities: Tensor) -> Tensor:
    """sigma bound of the alpha >= ALPHA_MIN region, log(opacity / ALPHA_MIN) widened
    for float rounding; 1e30 where the conic is not an ellipse (blend.h, reach_sigma)."""
    a, b, c = conics.unbind(-1)
    det = a * c - b * b
    ok = (det > 0) & (a > 0)
    s = torch.log(opacities.clamp(min=ALPHA_MIN) / ALPHA_MIN)
    return torch.where(ok, s * (1.002 + 2e-6 * (a * c / torch.where(ok, det, 1.0))) + 0.002, 1e30)


def _box_min_sigma(conics: Tensor, u0: Tensor, u1: Tensor, v0: Tensor, v1: Tensor) -> Tensor:
    """Minimum of sigma over the box [u0, u1] x [v0, v1] of offsets from the center,
    on the two box edges nearest the center (blend.h, box_min_sigma)."""
    a, b, c = conics.unbind(-1)
    zero = torch.zeros_like(u0)
    U, V = torch.minimum(torch.maximum(zero, u0), u1), torch.minimum(torch.maximum(zero, v0), v1)
    v_at_U = torch.minimum(torch.maximum(-b / c * U, v0), v1)
    u_at_V = torch.minimum(torch.maximum(-b / a * V, u0), u1)
    on_u = 0.5 * (a * U * U + c * v_at_U * v_at_U) + b * U * v_at_U
    on_v = 0.5 * (a * u_at_V * u_at_V + c * V * V) + b * u_at_V * V
    return torch.minimum(on_u, on_v)


def _tile_min_sigma(conics: Tensor, means: Tensor, tx: Tensor, ty: Tensor, tile_size: int) -> Tensor:
    """Minimum of sigma over the pixel centers of tile (tx, ty), the box from its
    first pixel center to its last (blend.h, tile_min_sigma)."""
    u0 = tx.to(torch.float32) * tile_size + 0.5 - means[:, 0]
    v0 = ty.to(torch.float32) * tile_size + 0.5 - means[:, 1]
    return _box_min_sigma(conics, u0, u0 + (tile_size - 1), v0, v0 + (tile_size - 1))


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor,  # [C, N, 2]
    radii: Tensor,  # [C, N, 2]
    depths: Tensor,  # [C, N]
    tile_size: int,
    tile_width: int,
    tile_height: int,
    conics: Tensor | None = None,  # [C, N, 3]
    opacities: Tensor | None = None,  # [C, N]
) -> tuple[Tensor, Tensor, Tensor]:
    """Which Gaussians touch which tile, sorted front to back within each tile.

    A Gaussian's tiles are those of its bounding rectangle (from radii); with
    conics and opacities, only those whose pixel centers its alpha >= ALPHA_MIN
    region reaches (a thin diagonal Gaussian misses most of its rectangle); without, the
    whole rectangle, as in gsplat.
    Returns tiles_per_gauss [C, N] int32, isect_offsets [C, tile_height, tile_width]
    int32 (start of each tile's list in flatten_ids) and flatten_ids [M] int32
    (c * N + n). Ties in depth keep Gaussian order, like the compiled backends.
    """
    C, N = depths.shape
    dev = means2d.device
    tile_mins = torch.floor((means2d - radii) / tile_size).long()  # [C, N, 2]
    tile_maxs = torch.ceil((means2d + radii) / tile_size).long()
    limits = torch.tensor([tile_width, tile_height], device=dev)
    tile_mins = torch.minimum(tile_mins.clamp(min=0), limits)
    tile_maxs = torch.minimum(tile_maxs.clamp(min=0), limits)
    rect_counts = (tile_maxs - tile_mins).prod(dim=-1) * (radii > 0).any(dim=-1)  # [C, N]

    flat_counts = rect_counts.flatten()
    ids = torch.repeat_interleave(torch.arange(C * N, device=dev), flat_counts)  # [M]
    # k-th tile of each Gaussian, in row-major order inside its tile rectangle
    starts = torch.cumsum(flat_counts, 0) - flat_counts
    k = torch.arange(ids.numel(), device=dev) - starts[ids]
    span_x = (tile_maxs - tile_mins)[..., 0].flatten()[ids]
    tx = tile_mins[..., 0].flatten()[ids] + k % span_x.clamp(min=1)
    ty = tile_mins[..., 1].flatten()[ids] + k // span_x.clamp(min=1)
    if conics is not None:
        # keep the tiles with a pixel center the alpha >= ALPHA_MIN region can reach
        f32 = torch.float32
        mean = means2d.reshape(-1, 2)[ids].to(f32)
        q = conics.reshape(-1, 3)[ids].to(f32)
        reach = _reach_sigma(q, opacities.reshape(-1)[ids].to(f32))
        reached = (reach >= 1e30) | ~(_tile_min_sigma(q, mean, tx, ty, tile_size) > reach)
        ids, tx, ty = ids[reached], tx[reached], ty[reached]
    counts = torch.bincount(ids, minlength=C * N).reshape(C, N)
    cam = ids // N
    tile_ids = (cam * tile_height + ty) * tile_width + tx  # global tile index
    # Sort by (tile, depth); a stable sort keeps Gaussian order on ties.
    depth_key = depths.flatten()[ids].to(torch.float32).contiguous().view(torch.int32).long()
    keys = tile_ids * (1 << 32) + depth_key
    order = torch.sort(keys, stable=True).indices
    flatten_ids = ids[order].to(torch.int32)
    tile_counts = torch.bincount(tile_ids, minlength=C * tile_height * tile_width)
    offsets = (torch.cumsum(tile_counts, 0) - tile_counts).to(torch.int32)
    return counts.to(torch.int32), offsets.reshape(C, tile_height, tile_width), flatten_ids


def _absgrad_hook(absgrad_sum: Tensor, gaussian_ids: Tensor):
    def hook(grad: Tensor) -> None:  # grad [P, M_t, 2]: per-pixel dL/dmeans2d
        absgrad_sum.index_add_(0, gaussian_ids, grad.abs().sum(dim=0))

    return hook


def blend(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    isect_offsets: Tensor,  # [C, TH, TW]
    flatten_ids: Tensor,  # [M]
    width: int,
    height: int,
    tile_size: int,
    absgrad: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Front-to-back alpha blending of depth-sorted Gaussians, tile by tile.

    Returns colors [C, H, W, D] (no background), alphas [C, H, W, 1],
    accumulated weights [C, N] (sum over pixels of alpha * T) and the number
    of pixels each Gaussian contributed to [C, N] int32. With `absgrad`,
    backward stores sum over pixels of |dL/dmeans2d| in `means2d.absgrad`.
    """
    C, N, D = colors.shape
    dtype, device = colors.dtype, colors.device
    TH, TW = isect_offsets.shape[1:]
    n_tiles = C * TH * TW
    offsets = torch.cat([isect_offsets.flatten().long(), torch.tensor([flatten_ids.numel()], device=device)])
    flat_ids = flatten_ids.long()
    means2d_f, conics_f = means2d.reshape(C * N, 2), conics.reshape(C * N, 3)
    colors_f, opac_f = colors.reshape(C * N, D), opacities.reshape(C * N)

    out_color = torch.zeros(C, TH * tile_size, TW * tile_size, D, dtype=dtype, device=device)
    out_T = torch.ones(C, TH * tile_size, TW * tile_size, dtype=dtype, device=device)
    weights = torch.zeros(C * N, dtype=dtype, device=device)
    pixel_counts = torch.zeros(C * N, dtype=torch.int64, device=device)

    track_absgrad = absgrad and means2d.requires_grad and torch.is_grad_enabled()
    if track_absgrad:
        absgrad_sum = torch.zeros(C * N, 2, dtype=dtype, device=device)
        means2d.absgrad = absgrad_sum.view(C, N, 2)  # filled in during backward

    # Pixel centers of one tile, relative to its corner.
    py, px = torch.meshgrid(torch.arange(tile_size, device=device), torch.arange(tile_size, device=device), indexing="ij")
    local = torch.stack([px.flatten(), py.flatten()], dim=-1).to(dtype) + 0.5  # [P, 2]
    for tile in range(n_tiles):
        start, end = int(offsets[tile]), int(offsets[tile + 1])
        if start == end:
            continue
        c, rest = divmod(tile, TH * TW)
        ty, tx = divmod(rest, TW)
        g = flat_ids[start:end]  # [M_t], front to back
        pix = local + torch.tensor([tx * tile_size, ty * tile_size], dtype=dtype, device=device)  # [P, 2]
        delta = means2d_f[g][None] - pix[:, None]  # [P, M_t, 2]
        if track_absgrad:
            delta.register_hook(_absgrad_hook(absgrad_sum, g))
        con = conics_f[g][None]
        sigma = 0.5 * (con[..., 0] * delta[..., 0] ** 2 + con[..., 2] * delta[..., 1] ** 2) + con[..., 1] * delta[..., 0] * delta[..., 1]
        alpha = torch.clamp(opac_f[g][None] * torch.exp(-sigma), max=ALPHA_MAX)  # [P, M_t]
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, 0.0)
        # Transmittance after each Gaussian; a pixel stops before the Gaussian
        # that would push it to T_MIN, and T never increases, so a mask suffices.
        T_after = torch.cumprod(1.0 - alpha, dim=-1)
        alive = T_after > T_MIN
        alpha = torch.where(alive, alpha, 0.0)
        T_after = torch.cumprod(1.0 - alpha, dim=-1)
        T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], dim=-1)
        w = alpha * T_before  # [P, M_t]
        tile_color = w @ colors_f[g]  # [P, D]
        ys, xs = ty * tile_size, tx * tile_size
        out_color[c, ys : ys + tile_size, xs : xs + tile_size] = tile_color.reshape(tile_size, tile_size, D)
        out_T[c, ys : ys + tile_size, xs : xs + tile_size] = T_after[:, -1].reshape(tile_size, tile_size)
        # Pixels outside the image do not count towards the statistics.
        in_image = ((pix[:, 0] < width) & (pix[:, 1] < height)).to(dtype)[:, None]
        weights = weights.index_add(0, g, (w.detach() * in_image).sum(dim=0))
        pixel_counts.index_add_(0, g, ((w.detach() > 0) & (in_image > 0)).sum(dim=0))

    colors_out = out_color[:, :height, :width]
    alphas_out = 1.0 - out_T[:, :height, :width, None]
    return colors_out, alphas_out, weights.reshape(C, N), pixel_counts.reshape(C, N).to(torch.int32)
