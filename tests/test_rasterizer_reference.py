"""The torch reference against finite differences and against gsplat's independent
pure-torch functions (gsplat.cuda._torch_impl runs on a CPU)."""

from __future__ import annotations

import pytest
import torch

from splat.rasterizer import rasterize, reference

PARAMS = ("means", "quats", "scales", "opacities", "colors", "viewmats")


def tiny_scene(sh_degree=None, cameras=1):
    g = torch.Generator().manual_seed(4)
    n = 4
    means = torch.tensor([[0.0, 0.0, 2.0], [0.15, -0.1, 2.4], [-0.2, 0.1, 2.2], [0.05, 0.2, 2.8]])
    return dict(
        means=means.double(),
        quats=torch.randn(n, 4, generator=g).double(),
        scales=(torch.rand(n, 3, generator=g) * 0.1 + 0.08).double(),
        opacities=(torch.rand(n, generator=g) * 0.5 + 0.3).double(),
        colors=(torch.rand(n, 3, generator=g) if sh_degree is None
                else torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.2).double(),
        viewmats=torch.eye(4).repeat(cameras, 1, 1).double(),
        Ks=torch.tensor([[12.0, 0, 6.0], [0, 12.0, 5.0], [0, 0, 1]]).repeat(cameras, 1, 1).double(),
    )  # fmt: skip


@pytest.mark.parametrize(
    "sh_degree, antialiased, mode",
    [(None, False, "RGB"), (3, False, "RGB"), (None, True, "RGB+ED"), (2, True, "D")],
)
def test_reference_gradients_match_finite_differences(sh_degree, antialiased, mode):
    scene = tiny_scene(sh_degree)
    names = [k for k in PARAMS if not (mode == "D" and k == "colors")]
    inputs = [scene[k].clone().requires_grad_(True) for k in names]
    background = torch.tensor([[0.2, 0.3, 0.4]], dtype=torch.float64)

    def render(*tensors):
        kw = dict(scene, **dict(zip(names, tensors)))
        colors, alphas, _ = rasterize(
            **kw, width=12, height=10, backend="torch", antialiased=antialiased,
            render_mode=mode, backgrounds=background,
        )  # fmt: skip
        return colors, alphas

    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


# ---- gsplat as an independent oracle -----------------------------------------------

gsplat_impl = pytest.importorskip("gsplat.cuda._torch_impl")


def test_covariance_matches_gsplat(make_scene):
    s = make_scene(n=500, seed=1)
    ours = reference.quat_scale_to_covar(s["quats"], s["scales"])
    theirs, _ = gsplat_impl._quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False, triu=False)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("antialiased", [False, True])
def test_projection_matches_gsplat(make_scene, backend, antialiased, request):
    if backend == "cpu":
        request.getfixturevalue("cpu_backend")
    from splat.rasterizer import backends

    s = make_scene(n=400, cameras=3, seed=2, width=64, height=48)
    s["means"][:5, 2] = torch.tensor([-1.0, 0.005, 30.0, 2.0, 2.0])  # behind, at the near plane, far
    s["means"][3, 0] = 20.0  # off-screen
    stages = backends.select(backend, s["means"])
    radii, means2d, depths, conics, comps = stages.project_gaussians(
        s["means"], s["quats"], s["scales"], None, s["viewmats"], s["Ks"], 64, 48, 0.3, 0.01, 1e10, antialiased
    )
    covars = reference.quat_scale_to_covar(s["quats"], s["scales"])
    g_radii, g_means2d, g_depths, g_conics, g_comps = gsplat_impl._fully_fused_projection(
        s["means"], covars, s["viewmats"], s["Ks"], 64, 48, eps2d=0.3, calc_compensations=True
    )
    assert torch.equal(radii, g_radii)
    valid = radii.amax(-1) > 0
    assert valid.sum() > 300 and (~valid).sum() >= 3
    torch.testing.assert_close(means2d[valid], g_means2d[valid], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(depths, g_depths, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(conics[valid], g_conics[valid], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(comps[valid], g_comps[valid], atol=1e-6, rtol=1e-4)


def _random_viewmats(cameras: int, g: torch.Generator) -> torch.Tensor:
    """World-to-camera [R t; 0 0 0 1] with random rotations (QR of a Gaussian matrix)."""
    q, _ = torch.linalg.qr(torch.randn(cameras, 3, 3, generator=g))
    viewmats = torch.eye(4).repeat(cameras, 1, 1)
    viewmats[:, :3, :3] = q
    viewmats[:, :3, 3] = torch.randn(cameras, 3, generator=g)
    return viewmats


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colors_match_gsplat(degree, request):
    """The view-dependent colors: gsplat's SH at means - inverse(viewmat)'s translation, + 0.5, clamped."""
    g = torch.Generator().manual_seed(degree)
    means = torch.randn(300, 3, generator=g)
    viewmats = _random_viewmats(2, g)
    coeffs = torch.randn(300, 16, 3, generator=g)
    dirs = means[None] - torch.linalg.inv(viewmats)[:, None, :3, 3]
    sh = gsplat_impl._spherical_harmonics(degree, dirs, coeffs[None].expand(2, -1, -1, -1))
    theirs = torch.clamp_min(sh + 0.5, 0.0)
    assert (theirs == 0).float().mean() > 0.02  # the clamp is exercised
    torch.testing.assert_close(reference.spherical_harmonics(degree, dirs, coeffs), sh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reference.sh_colors(degree, means, viewmats, coeffs), theirs, atol=1e-5, rtol=1e-5)
    request.getfixturevalue("cpu_backend")
    from splat.rasterizer import backend_cpu

    torch.testing.assert_close(backend_cpu.sh_colors(degree, means, viewmats, coeffs), theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("degree", [1, 3])  # (at degree 0 the colors do not depend on the view)
def test_sh_colors_gradients_match_reference(cpu_backend, degree):
    """Gradients of the fused CPU colors (means, coefficients, viewmats through the
    camera centers) against autograd through the reference, three cameras."""
    from splat.rasterizer import backend_cpu

    g = torch.Generator().manual_seed(7)
    means, coeffs = torch.randn(2500, 3, generator=g), torch.randn(2500, 16, 3, generator=g)
    viewmats = _random_viewmats(3, g)
    weights = torch.randn(3, 2500, 3, generator=g)
    grads = {}
    for name, fn in (("torch", reference.sh_colors), ("cpu", backend_cpu.sh_colors)):
        inputs = [x.clone().requires_grad_(True) for x in (means, viewmats, coeffs)]
        (fn(degree, inputs[0], inputs[1], inputs[2]) * weights).sum().backward()
        grads[name] = [x.grad for x in inputs]
    for name, ref, cpu in zip(("means", "viewmats", "coeffs"), grads["torch"], grads["cpu"]):
        assert ref.norm() > 0, name
        assert (cpu - ref).norm() / ref.norm() < 1e-4, name
    assert torch.equal(grads["cpu"][1][:, 3], torch.zeros(3, 4))  # the bottom row is not read


def test_sh_colors_clamp_passes_the_gradient_at_zero(cpu_backend):
    """torch.clamp_min's rule: a color exactly at 0 (a black Gaussian, DC = -0.5 / C0)
    still gets a gradient; below 0 it gets none."""
    from splat.rasterizer import backend_cpu

    C0 = 0.28209479177387814
    black = torch.tensor(-0.5 / C0)  # the float32 DC whose color is exactly 0
    for _ in range(8):
        if float(reference.spherical_harmonics(0, torch.ones(3), black.expand(1, 1)) + 0.5) == 0.0:
            break
        black = torch.nextafter(black, torch.tensor(0.0))
    coeffs = torch.zeros(3, 1, 3)
    coeffs[0, 0] = black
    coeffs[1, 0] = -1.0 / C0  # -0.5: clamped
    coeffs[2, 0] = 0.2
    means, viewmats = torch.randn(3, 3), torch.eye(4)[None]
    for fn in (reference.sh_colors, backend_cpu.sh_colors):
        c = coeffs.clone().requires_grad_(True)
        colors = fn(0, means, viewmats, c)
        assert torch.equal(colors[0, :2], torch.zeros(2, 3))
        colors.sum().backward()
        torch.testing.assert_close(c.grad[:, 0], torch.tensor([[C0] * 3, [0.0] * 3, [C0] * 3]))


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_tile_intersection_matches_gsplat(make_scene, backend, request):
    if backend == "cpu":
        request.getfixturevalue("cpu_backend")
    from splat.rasterizer import backends

    # gsplat's pure-torch intersection is a Python loop: keep it small
    s = make_scene(n=40, cameras=2, seed=3, width=70, height=45)
    stages = backends.select(backend, s["means"])
    radii, means2d, depths, _, _ = reference.project_gaussians(
        s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 70, 45
    )
    tw, th = 5, 3  # ceil(70 / 16), ceil(45 / 16)
    counts, offsets, flatten_ids = stages.intersect_tiles(means2d, radii, depths, 16, tw, th)
    g_counts, g_isect_ids, g_flatten_ids = gsplat_impl._isect_tiles(means2d, radii, depths, 16, tw, th)
    g_offsets = gsplat_impl._isect_offset_encode(g_isect_ids, 2, tw, th)
    assert flatten_ids.numel() > 40
    assert torch.equal(counts, g_counts)
    assert torch.equal(flatten_ids, g_flatten_ids)
    assert torch.equal(offsets, g_offsets)
