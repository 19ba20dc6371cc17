"""The C++ CPU backend against the pure-torch reference: forward and every gradient."""

from __future__ import annotations

import itertools

import pytest
import torch

from splat.rasterizer import rasterize

PARAMS = ("means", "quats", "scales", "opacities", "colors", "viewmats")


def render_with_grads(scene: dict, backend: str, **kwargs):
    """Render, backprop a fixed random loss, return (colors, alphas, meta, grads)."""
    inputs = {k: (v.clone().requires_grad_(k in PARAMS) if isinstance(v, torch.Tensor) else v) for k, v in scene.items()}
    if kwargs.get("backgrounds") is not None:
        kwargs["backgrounds"] = kwargs["backgrounds"].clone().requires_grad_(True)
    colors, alphas, meta = rasterize(**inputs, backend=backend, **kwargs)
    meta.means2d.retain_grad()
    g = torch.Generator().manual_seed(123)
    w_colors = torch.rand(colors.shape, generator=g, dtype=colors.dtype)
    w_alphas = torch.rand(alphas.shape, generator=g, dtype=colors.dtype)
    (colors * w_colors).sum().add((alphas * w_alphas).sum()).backward()
    grads = {k: inputs[k].grad for k in PARAMS}
    grads["means2d"] = meta.means2d.grad
    if kwargs.get("backgrounds") is not None:
        grads["backgrounds"] = kwargs["backgrounds"].grad
    return colors.detach(), alphas.detach(), meta, grads


def assert_grads_close(ref: dict, test: dict, rtol: float = 1e-3) -> None:
    for name, g_ref in ref.items():
        g_test = test[name]
        if g_ref is None:  # e.g. colors in depth-only modes
            assert g_test is None, f"{name}: gradient where the reference has none"
            continue
        assert g_test is not None, f"no gradient for {name}"
        scale = g_ref.norm().item()
        err = (g_test - g_ref).norm().item()
        if scale < 1e-8:
            assert err < 1e-6, f"{name}: reference gradient is zero, test has norm {err}"
        else:
            assert err / scale < rtol, f"{name}: relative gradient error {err / scale:.2e}"


def compare(scene: dict, depth_channels: int = 0, **kwargs) -> None:
    c_ref, a_ref, m_ref, g_ref = render_with_grads(scene, "torch", **kwargs)
    c_cpu, a_cpu, m_cpu, g_cpu = render_with_grads(scene, "cpu", **kwargs)
    assert m_cpu.backend == "cpu" and m_ref.backend == "torch"
    rgb = c_ref.shape[-1] - depth_channels
    torch.testing.assert_close(c_cpu[..., :rgb], c_ref[..., :rgb], atol=1e-5, rtol=0)
    torch.testing.assert_close(a_cpu, a_ref, atol=1e-5, rtol=0)
    if depth_channels:
        # depth is in scene units (~3) and ED divides by small alphas: relative
        torch.testing.assert_close(c_cpu[..., rgb:], c_ref[..., rgb:], atol=1e-5, rtol=1e-4)
    assert torch.equal(m_cpu.radii, m_ref.radii)
    assert torch.equal(m_cpu.flatten_ids, m_ref.flatten_ids)
    assert torch.equal(m_cpu.isect_offsets, m_ref.isect_offsets)
    visible = m_ref.radii.amax(dim=-1) > 0  # culled Gaussians' 2D values are unspecified
    torch.testing.assert_close(m_cpu.means2d.detach()[visible], m_ref.means2d.detach()[visible], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(m_cpu.conics.detach()[visible], m_ref.conics.detach()[visible], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(m_cpu.accum_weights, m_ref.accum_weights, atol=1e-4, rtol=1e-4)
    assert (m_cpu.pixel_counts - m_ref.pixel_counts).abs().max() <= 1  # a pixel exactly at a threshold may flip
    assert_grads_close(g_ref, g_cpu)


COLOR_CASES = [dict(channels=1), dict(channels=3), dict(channels=16)] + [dict(sh_degree=d) for d in range(4)]


@pytest.mark.parametrize(
    "color_case, antialiased",
    list(itertools.product(COLOR_CASES, [False, True])),
    ids=lambda v: str(v),
)
def test_colors_and_antialiasing(cpu_backend, make_scene, color_case, antialiased):
    index = COLOR_CASES.index(color_case)
    cameras = 1 + index % 3
    scene = make_scene(n=250, cameras=cameras, seed=index, **color_case)
    D = scene["colors"].shape[-1]
    backgrounds = torch.rand(cameras, D) if index % 2 == 0 else None
    compare(scene, antialiased=antialiased, backgrounds=backgrounds)


@pytest.mark.parametrize("render_mode", ["RGB", "D", "ED", "RGB+D", "RGB+ED"])
@pytest.mark.parametrize("sh_degree", [None, 3])
def test_render_modes(cpu_backend, make_scene, render_mode, sh_degree):
    scene = make_scene(n=250, cameras=2, sh_degree=sh_degree, seed=7)
    depth = 1 if "D" in render_mode else 0
    compare(scene, depth_channels=depth, render_mode=render_mode, backgrounds=torch.rand(2, 3))


def test_absgrad_matches_reference(cpu_backend, make_scene):
    scene = make_scene(n=200, cameras=2, seed=3)
    _, _, m_ref, _ = render_with_grads(scene, "torch", absgrad=True)
    _, _, m_cpu, _ = render_with_grads(scene, "cpu", absgrad=True)
    assert m_ref.means2d.absgrad.abs().sum() > 0
    torch.testing.assert_close(m_cpu.means2d.absgrad, m_ref.means2d.absgrad, atol=1e-6, rtol=1e-3)
    # |sum| <= sum |.|: the abs-grad bounds the plain gradient
    assert (m_cpu.means2d.grad.abs() <= m_cpu.means2d.absgrad + 1e-6).all()


# ---- edge cases -------------------------------------------------------------------


def edge_scene(make_scene, **overrides):
    scene = make_scene(n=64, cameras=2, seed=11, width=37, height=29)
    means, scales, opac = scene["means"], scene["scales"], scene["opacities"]
    means[0] = torch.tensor([0.0, 0.0, -2.0])  # behind the camera
    means[1] = torch.tensor([0.0, 0.1, 0.02])  # straddles the near plane
    scales[1] = torch.tensor([0.3, 0.3, 0.3])
    means[2] = torch.tensor([40.0, 0.0, 3.0])  # far off-screen
    means[3] = torch.tensor([0.1, -0.1, 2.5])  # much larger than the image
    scales[3] = torch.tensor([6.0, 5.0, 4.0])
    scales[4] = torch.tensor([1e-7, 1e-7, 1e-7])  # degenerate
    scales[5] = torch.tensor([0.2, 1e-8, 0.2])  # flat disc
    opac[6] = 0.0  # invisible
    opac[7] = 1.0  # fully opaque (alpha clamps at 0.99)
    scene.update(overrides)
    return scene


@pytest.mark.parametrize("antialiased", [False, True])
def test_edge_cases(cpu_backend, make_scene, antialiased):
    compare(edge_scene(make_scene), antialiased=antialiased, backgrounds=torch.rand(2, 3))


@pytest.mark.parametrize("size", [(1, 1), (17, 1), (1, 33), (31, 47), (64, 48)])
def test_image_sizes(cpu_backend, make_scene, size):
    w, h = size
    compare(make_scene(n=120, cameras=1, seed=5, width=w, height=h))


# rows are vectors of 8, 16, 32 or 64 lanes: sizes in between leave padding lanes
@pytest.mark.parametrize("tile_size", [5, 8, 12, 16, 24, 32, 64])
def test_tile_sizes(cpu_backend, make_scene, tile_size):
    compare(make_scene(n=150, cameras=2, seed=6, width=50, height=35), tile_size=tile_size)
    compare(make_scene(n=40, cameras=1, seed=7, width=70, height=66, channels=5), tile_size=tile_size)  # any D


def test_empty_scene_renders_background(cpu_backend, make_scene):
    scene = make_scene(n=0, cameras=2)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    for backend in ("torch", "cpu"):
        colors, alphas, meta = rasterize(**scene, backgrounds=bg, backend=backend)
        assert colors.shape == (2, 40, 48, 3)
        assert torch.equal(colors, bg[:, None, None, :].expand_as(colors))
        assert alphas.abs().max() == 0
        assert meta.flatten_ids.numel() == 0


def test_fully_opaque_pixel_stops_early(cpu_backend):
    """Two opaque layers: the pixel stops at T < 1e-4 before the back layer."""
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.1], [0.0, 0.0, 2.2], [0.0, 0.0, 3.0]])
    n = len(means)
    args = dict(
        means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), scales=torch.full((n, 3), 1.0),
        opacities=torch.ones(n), colors=torch.eye(4)[:, :3].contiguous(), viewmats=torch.eye(4)[None],
        Ks=torch.tensor([[[10.0, 0, 0.5], [0, 10.0, 0.5], [0, 0, 1]]]), width=1, height=1,
    )  # fmt: skip
    for backend in ("torch", "cpu"):
        colors, alphas, meta = rasterize(**args, backend=backend)
        # alpha = 0.99 each: T = 1e-2 after the first; the second would bring
        # T to 1e-4 <= T_MIN, so the pixel stops and only the first one blends
        expected = torch.tensor([0.99, 0.0, 0.0])
        torch.testing.assert_close(colors[0, 0, 0], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(alphas[0, 0, 0, 0], torch.tensor(0.99), atol=1e-6, rtol=0)
        assert meta.pixel_counts[0].tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("ts", [16, 64])
def test_single_gaussian_alphas_match_the_exact_falloff(cpu_backend, ts):
    """One Gaussian blended over a 64 x 64 image (its color 1, so a pixel's color
    is its alpha) against min(0.99, o exp(-sigma)) in float64: the CPU's fast
    exp and row-wise sigma must stay within float32 rounding over the whole
    kept range (sigma 0 to log(255 o)), and drop the samples below 1/255.
    16-pixel tiles take the AVX-512 table exp, 64-pixel ones the polynomial."""
    W = H = 64
    n_tiles = (W // ts) * (H // ts)  # every tile lists the Gaussian
    means2d = torch.tensor([[[30.3, 33.7]]])
    conic = torch.tensor([0.020, 0.004, 0.012])  # positive definite, sigma up to ~25 at the corners
    opacity = 0.995
    render, _, _, counts = cpu_backend.blend(
        means2d, conic.view(1, 1, 3), torch.ones(1, 1, 1), torch.tensor([[opacity]]),
        torch.arange(n_tiles, dtype=torch.int32).view(1, H // ts, W // ts), torch.zeros(n_tiles, dtype=torch.int32),
        W, H, ts,
    )  # fmt: skip
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                            indexing="ij")  # fmt: skip
    dx, dy = means2d[0, 0, 0].double() - xs, means2d[0, 0, 1].double() - ys
    a, b, c = conic.double()
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    exact = (opacity * torch.exp(-sigma)).clamp(max=0.99)
    got = render[0, :, :, 0].double()
    kept = exact >= 1 / 255 * (1 + 1e-5)  # clear of the threshold's rounding
    dropped = exact < 1 / 255 * (1 - 1e-5)
    assert kept.sum() > 1000 and dropped.sum() > 500
    # float32 sigma is off by a few ulps (sigma * 6e-8 each; the rows' sigmas
    # come by differences, blend.cpp RowSigmaSteps), which exp turns into a
    # relative error of the same size; exp itself adds ~1.2e-7. Measured: 4.6e-7
    # (1 + sigma) with either tile size (1.5e-7 with the direct form); an exp
    # missing its last two terms gives 2.4e-6.
    rel = ((got - exact).abs() / exact / (1 + sigma))[kept]
    assert rel.max() < 1e-6, f"max relative error {rel.max():.3g} x (1 + sigma)"
    assert (got[dropped] == 0).all()
    assert int(counts[0, 0]) == int((got > 0).sum())


def test_fixed_cameras_skip_the_viewmat_gradient(cpu_backend, make_scene):
    """Without pose refinement the backward pass leaves viewmats alone; the other
    gradients are the same as when viewmats do take a gradient."""
    scene = make_scene(n=300, cameras=2, seed=5, sh_degree=2)
    _, _, _, with_pose = render_with_grads(scene, "cpu")
    inputs = {k: (v.clone().requires_grad_(k in PARAMS[:-1]) if isinstance(v, torch.Tensor) else v) for k, v in scene.items()}
    colors, alphas, _ = rasterize(**inputs, backend="cpu")
    g = torch.Generator().manual_seed(123)  # the same loss as render_with_grads
    w_colors = torch.rand(colors.shape, generator=g)
    w_alphas = torch.rand(alphas.shape, generator=g)
    (colors * w_colors).sum().add((alphas * w_alphas).sum()).backward()
    assert inputs["viewmats"].grad is None
    assert with_pose["viewmats"].abs().sum() > 0
    for name in PARAMS[:-1]:
        assert torch.equal(inputs[name].grad, with_pose[name]), name


def test_project_backward_takes_empty_for_unreached_gradients(cpu_backend, make_scene):
    """project_backward reads an empty v_depths or v_compensations as zeros (the
    backward pass did not reach them): the same gradients as explicit zeros, for
    two cameras and with each one given."""
    scene = make_scene(n=2000, cameras=2, seed=6)
    ext = cpu_backend.load_extension()
    gaussians = (scene["means"], scene["quats"], scene["scales"])
    settings = (scene["width"], scene["height"], 0.3, 0.01, 1e10, True)
    radii = ext.project_forward(*gaussians, scene["opacities"], scene["viewmats"], scene["Ks"], *settings)[0]
    g = torch.Generator().manual_seed(0)
    C, N = radii.shape[:2]
    v_means2d, v_conics = torch.randn(C, N, 2, generator=g), torch.randn(C, N, 3, generator=g)
    v_depths, v_comps = torch.randn(C, N, generator=g), torch.randn(C, N, generator=g)
    zeros, empty = torch.zeros(C, N), torch.empty(0)

    def grads(depths, comps):
        return ext.project_backward(*gaussians, scene["viewmats"], scene["Ks"], *settings, radii, v_means2d,
                                    depths, v_conics, comps, True)  # fmt: skip

    for depths, comps in ((zeros, zeros), (v_depths, zeros), (zeros, v_comps)):
        explicit = grads(depths, comps)
        implicit = grads(empty if depths is zeros else depths, empty if comps is zeros else comps)
        assert all(torch.equal(a, b) for a, b in zip(explicit, implicit))
    assert not torch.equal(grads(v_depths, v_comps)[0], grads(zeros, zeros)[0])  # the inputs matter


def test_equal_depths_keep_gaussian_order(cpu_backend, make_scene):
    """Binning sorts by depth once (radix sort); ties must keep index order as the
    reference's stable sort does, with several cameras and depths spanning
    several exponents (every radix pass used)."""
    scene = make_scene(n=400, cameras=3, seed=9)
    z = scene["means"][:, 2]
    z[::3] = z[0]  # a third of the Gaussians share one depth
    z[1::7] = z[1] * 37.0  # others far behind
    compare(scene)


def _blend_inputs(cpu_backend, scene):
    """The CPU extension and blend_forward's arguments for a 2-camera scene
    (projected and binned by the cpu backend, random RGB colors)."""
    from splat.rasterizer.backends import select

    stages = select("cpu", scene["means"])
    W, H = scene["width"], scene["height"]
    radii, means2d, depths, conics, _ = stages.project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["viewmats"], scene["Ks"], W, H
    )
    n = scene["means"].shape[0]
    colors = torch.rand(2, n, 3)
    opacities = scene["opacities"][None].expand(2, -1).contiguous()
    _, offsets, ids = stages.intersect_tiles(means2d, radii, depths, 16, (W + 15) // 16, (H + 15) // 16, conics, opacities)
    return cpu_backend.load_extension(), (means2d.detach(), conics.detach(), colors, opacities, offsets, ids, W, H, 16)


def test_blend_backward_repacks_without_the_forward_rows(cpu_backend, make_scene):
    """blend_backward takes the forward pass's packed rows back (blend_forward's
    last output) or, given an empty tensor, packs them again: the same
    gradients bit for bit; rows of the wrong size are an error."""
    ext, blend_in = _blend_inputs(cpu_backend, make_scene(n=300, cameras=2, seed=6))
    out = ext.blend_forward(*blend_in)
    assert len(out) == 7 and out[6].numel() == 2 * 300 * 16
    v_render, v_alphas = torch.rand_like(out[0]), torch.rand_like(out[1])
    reused = ext.blend_backward(*blend_in, out[2], out[3], v_render, v_alphas, True, out[6])
    repacked = ext.blend_backward(*blend_in, out[2], out[3], v_render, v_alphas, True, torch.empty(0))
    assert reused[0].abs().sum() > 0
    for a, b in zip(reused, repacked):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="forward_packed"):
        ext.blend_backward(*blend_in, out[2], out[3], v_render, v_alphas, True, out[6][:-16])


def test_blend_backward_reads_strided_pixel_gradients(cpu_backend, make_scene):
    """blend_backward reads the pixel gradients with their strides (a sum()
    loss hands back expanded ones, which rasterize passes without a copy):
    the same gradients bit for bit as from contiguous copies, through
    rasterize too; gradients of the wrong shape are an error."""
    from splat.rasterizer import rasterize

    scene = make_scene(n=300, cameras=2, seed=11)
    ext, blend_in = _blend_inputs(cpu_backend, scene)
    W, H = scene["width"], scene["height"]
    out = ext.blend_forward(*blend_in)
    strided = [
        (torch.tensor(0.7).expand(2, H, W, 3), torch.tensor(-0.3).expand(2, H, W, 1)),  # sum()'s
        (torch.rand(2, W, H, 3).transpose(1, 2), torch.rand(2, H, W, 2)[..., 1:]),  # a view
        (torch.rand(3, 1, 1).expand(3, H, W).permute(1, 2, 0)[None].expand(2, -1, -1, -1), torch.rand(2, H, W, 1)),
    ]
    for v_render, v_alphas in strided:
        assert not v_render.is_contiguous()
        got = ext.blend_backward(*blend_in, out[2], out[3], v_render, v_alphas, False, out[6])
        want = ext.blend_backward(*blend_in, out[2], out[3], v_render.contiguous(), v_alphas.contiguous(), False, out[6])
        assert got[0].abs().sum() > 0
        for a, b in zip(got[:4], want[:4]):
            assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="pixel gradients"):
        ext.blend_backward(*blend_in, out[2], out[3], v_render[:, :, :-1], v_alphas[:, :, :-1], False, out[6])

    # through rasterize: a sum() loss against the same loss with a contiguous gradient
    grads = []
    for weight in (None, torch.ones(2, H, W, 3)):
        params = {k: scene[k].clone().requires_grad_() for k in ("means", "quats", "scales", "opacities", "colors")}
        render, alphas, _ = rasterize(**params, viewmats=scene["viewmats"], Ks=scene["Ks"], width=W, height=H,
                                      backend="cpu")  # fmt: skip
        loss = render.sum() if weight is None else (render * weight).sum()
        (loss + alphas.sum()).backward()
        grads.append([p.grad for p in params.values()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("degree, K", [(0, 1), (1, 4), (2, 9), (3, 16), (1, 16)])
def test_sh_colors_in_transposed_blocks_match(cpu_backend, degree, K):
    """The SH pass transposes the coefficients of 256 Gaussians at a time
    (AVX-512) and runs the rest one by one: both agree with the reference, a
    Gaussian alone (the other path) agrees with itself in a block, and the
    result does not depend on the thread count."""
    from splat.rasterizer import reference

    g = torch.Generator().manual_seed(K)
    N = 1100  # one 1024-Gaussian task of four blocks, and a task with a remainder
    means = torch.randn(N, 3, generator=g) * 2.0
    coeffs = torch.randn(N, K, 3, generator=g) * 0.5
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[1, :3, 3] = torch.tensor([0.3, -0.2, 1.0])
    ext = cpu_backend.load_extension()
    colors, raw, jacobian = ext.sh_colors_forward(degree, means, viewmats, coeffs, True)
    torch.testing.assert_close(colors, reference.sh_colors(degree, means, viewmats, coeffs), atol=1e-5, rtol=1e-5)
    without = ext.sh_colors_forward(degree, means, viewmats, coeffs, False)
    assert torch.equal(without[0], colors) and torch.equal(without[1], raw) and without[2].numel() == 0
    for i in (0, 17, 255, 256, 1023, 1099):
        _, alone_raw, alone_jacobian = ext.sh_colors_forward(degree, means[i : i + 1], viewmats, coeffs[i : i + 1], True)
        torch.testing.assert_close(alone_raw[:, 0], raw[:, i], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(alone_jacobian[..., 0], jacobian[..., i], atol=1e-6, rtol=1e-5)
    previous, min_work = torch.get_num_threads(), ext.set_min_parallel_work_ns(0)  # split even this small pass
    try:
        torch.set_num_threads(2)
        two_threads = ext.sh_colors_forward(degree, means, viewmats, coeffs, True)
        torch.set_num_threads(1)
        one_thread = ext.sh_colors_forward(degree, means, viewmats, coeffs, True)
    finally:
        torch.set_num_threads(previous)
        ext.set_min_parallel_work_ns(min_work)
    assert all(torch.equal(a, b) for a, b in zip(one_thread, two_threads))


@pytest.mark.parametrize("degree, K", [(0, 1), (1, 4), (2, 9), (3, 16), (1, 16)])
def test_sh_backward_with_and_without_the_direction_jacobian(cpu_backend, degree, K):
    """The SH backward pass takes the direction Jacobian the forward pass kept
    [C, 9, N], or an empty tensor (then it reads the coefficients): both give
    the reference's gradients (autograd through reference.sh_colors), for any
    thread count; a Jacobian of the wrong size is refused."""
    from splat.rasterizer import reference

    g = torch.Generator().manual_seed(10 + K)
    N = 1100  # blocks of 256 and a remainder
    means = torch.randn(N, 3, generator=g) * 2.0
    coeffs = torch.randn(N, K, 3, generator=g) * 0.5
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[1, :3, 3] = torch.tensor([0.3, -0.2, 1.0])
    v_colors = torch.randn(2, N, 3, generator=g)
    inputs = [x.clone().requires_grad_(True) for x in (means, viewmats, coeffs)]
    (reference.sh_colors(degree, *inputs) * v_colors).sum().backward()
    expected = {"means": inputs[0].grad, "coeffs": inputs[2].grad, "viewmats": inputs[1].grad}

    ext = cpu_backend.load_extension()
    _, raw, jacobian = ext.sh_colors_forward(degree, means, viewmats, coeffs, True)
    assert jacobian.shape == (2, 9, N)
    previous, min_work = torch.get_num_threads(), ext.set_min_parallel_work_ns(0)
    try:
        for jac in (jacobian, torch.empty(0)):
            results = []
            for threads in (2, 1):
                torch.set_num_threads(threads)
                results.append(ext.sh_colors_backward(degree, means, viewmats, coeffs, raw, v_colors, jac))
            assert all(torch.equal(a, b) for a, b in zip(*results))
            for (name, ref), ours in zip(expected.items(), results[0]):
                if degree == 0 and name != "coeffs":  # colors do not depend on the view
                    assert torch.equal(ours, torch.zeros_like(ours)), name
                    continue
                assert (ours - ref).norm() / ref.norm() < 1e-5, (name, jac.numel())
    finally:
        torch.set_num_threads(previous)
        ext.set_min_parallel_work_ns(min_work)
    with pytest.raises(RuntimeError, match="dir_jacobian"):
        ext.sh_colors_backward(degree, means, viewmats, coeffs, raw, v_colors, jacobian[:1])


def test_sh_passes_over_coefficients_larger_than_the_caches(cpu_backend):
    """Above 8 MB of coefficients the forward pass prefetches them and the
    backward pass writes their gradient with non-temporal stores: the results
    are bit-identical to two calls on halves that stay below it."""
    g = torch.Generator().manual_seed(5)
    N, half = 50_000, 25_600  # 9.6 MB; the split keeps the blocks of 1024 and 256 aligned
    means, coeffs = torch.randn(N, 3, generator=g) * 2.0, torch.randn(N, 16, 3, generator=g) * 0.5
    viewmats, v_colors = torch.eye(4)[None], torch.randn(1, N, 3, generator=g)
    ext = cpu_backend.load_extension()
    whole = ext.sh_colors_forward(3, means, viewmats, coeffs, True)
    parts = [ext.sh_colors_forward(3, means[s], viewmats, coeffs[s], True) for s in (slice(0, half), slice(half, N))]
    for i, dim in ((0, 1), (1, 1), (2, 2)):  # colors, raw [C, N, 3]; Jacobian [C, 9, N]
        assert torch.equal(whole[i], torch.cat([p[i] for p in parts], dim=dim))
    v_whole = ext.sh_colors_backward(3, means, viewmats, coeffs, whole[1], v_colors, whole[2])
    v_parts = [
        ext.sh_colors_backward(3, means[s], viewmats, coeffs[s], p[1], v_colors[:, s], p[2])
        for s, p in zip((slice(0, half), slice(half, N)), parts)
    ]
    assert torch.equal(v_whole[0], torch.cat([v[0] for v in v_parts]))  # v_means
    assert torch.equal(v_whole[1], torch.cat([v[1] for v in v_parts]))  # v_coeffs
