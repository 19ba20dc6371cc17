"""rasterize(): input validation, backend selection, determinism, meta."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splat.rasterizer import rasterize


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda s: s.update(means=s["means"][:, :2]), "means"),
        (lambda s: s.update(quats=s["quats"][:-1]), "quats"),
        (lambda s: s.update(scales=s["scales"].double()), "scales"),
        (lambda s: s.update(opacities=s["opacities"][:, None]), "opacities"),
        (lambda s: s.update(colors=s["colors"][:, None, None]), "colors"),
        (lambda s: s.update(viewmats=s["viewmats"][:, :3]), "viewmats"),
        (lambda s: s.update(Ks=s["Ks"][:0]), "Ks"),
        (lambda s: s.update(width=0), "width"),
        (lambda s: s.update(height=2.5), "height"),
        (lambda s: s["means"].__setitem__((0, 0), float("nan")), "means"),
        (lambda s: s["scales"].__setitem__((1, 2), float("inf")), "scales"),
        (lambda s: s.update(quats=torch.zeros_like(s["quats"])), "quats"),
        (lambda s: s.update(viewmats=s["viewmats"][:0], Ks=s["Ks"][:0]), "viewmats"),
        (lambda s: s.update(Ks=-s["Ks"]), "Ks"),
        (lambda s: s.update(means=s["means"].numpy()), "means"),
    ],
)
def test_bad_input_names_the_argument(make_scene, change, name):
    scene = make_scene(n=10)
    change(scene)
    with pytest.raises(ValueError, match=name):
        rasterize(**scene, backend="torch")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("sh_degree, coeffs, sh_arg", [(3, 16, None), (1, 4, None), (1, 9, 1), (0, 1, None)])
@pytest.mark.parametrize("render_mode", ["RGB", "RGB+ED", "D"])
def test_non_finite_sh_coefficients_every_path(cpu_backend, make_scene, bad, sh_degree, coeffs, sh_arg, render_mode):
    """The cpu backend leaves SH coefficients to its SH pass when it reads all
    of them (a check of its unclamped colors); otherwise, and for the torch
    reference, rasterize scans them. Either way a non-finite coefficient,
    even of a Gaussian off-screen and in a coefficient a view direction
    weights by 0, names colors, whichever camera and render mode."""
    for backend in ("cpu", "torch"):
        scene = make_scene(n=12, cameras=2, sh_degree=sh_degree)
        scene["colors"] = torch.cat([scene["colors"], torch.zeros(12, coeffs - (sh_degree + 1) ** 2, 3)], dim=1)
        scene["means"][5] = torch.tensor([0.0, 0.0, -4.0])  # behind both cameras
        rasterize(**scene, sh_degree=sh_arg, render_mode=render_mode, backend=backend)  # clean input passes
        scene["colors"][5, coeffs - 1, 2] = bad
        with pytest.raises(ValueError, match="colors contains NaN or infinite"):
            rasterize(**scene, sh_degree=sh_arg, render_mode=render_mode, backend=backend)


def test_huge_finite_sh_coefficients_are_not_an_error(cpu_backend, make_scene):
    """An overflow of finite coefficients also makes the SH pass's colors
    infinite: the exact scan tells it from a non-finite input."""
    scene = make_scene(n=12, sh_degree=3)
    scene["colors"][:, :, :] = torch.finfo(torch.float32).max
    colors, _, _ = rasterize(**scene, backend="cpu")
    assert torch.isinf(colors).any() or torch.isnan(colors).any()  # the overflow reached the render


@pytest.mark.parametrize("scanner", ["cpu extension", "torch"])
@pytest.mark.parametrize(
    "change, name",
    [
        (lambda s: s["means"].__setitem__((9, 2), float("nan")), "means"),
        (lambda s: s["colors"].__setitem__((0, 0), float("-inf")), "colors"),
        (lambda s: s["opacities"].__setitem__(4, float("inf")), "opacities"),
        (lambda s: s["viewmats"].__setitem__((0, 3, 3), float("nan")), "viewmats"),
        (lambda s: s["quats"].__setitem__(7, torch.tensor([0.0, -0.0, 0.0, -0.0])), "zero-length"),
    ],
)
def test_value_checks_on_both_paths(cpu_backend, make_scene, monkeypatch, scanner, change, name):
    """The value scans run in the CPU extension once it is loaded (float32,
    contiguous inputs) and in torch otherwise: the same errors either way."""
    from splat.rasterizer import build

    if scanner == "torch":
        monkeypatch.setattr(build, "loaded", lambda name: None)
    scene = make_scene(n=10)
    rasterize(**scene, backend="cpu")  # clean input passes
    change(scene)
    with pytest.raises(ValueError, match=name):
        rasterize(**scene, backend="cpu")


def test_value_scans_of_the_cpu_extension(cpu_backend):
    """first_non_finite and any_zero_quaternion against torch's own tests, at
    lengths around the vector width and every kind of non-finite value."""
    ext = cpu_backend.load_extension()
    big = torch.finfo(torch.float32).max
    edge = torch.tensor([big, -big, 1e-45, -1e-45, -0.0, 0.0])  # finite, sum overflows
    assert ext.first_non_finite([edge]) == -1
    for n in (1, 15, 16, 17, 100, 40_000):
        base = torch.randn(n)
        assert ext.first_non_finite([base, base]) == -1
        for pos in sorted({0, n // 2, n - 1}):
            for bad in (float("nan"), float("inf"), float("-inf")):
                x = base.clone()
                x[pos] = bad
                assert ext.first_non_finite([base, x, base]) == 1, (n, pos, bad)
                assert ext.first_non_finite([x, base]) == 0
    for n in (1, 16, 17, 33, 1000):  # the vectorized loop's body and remainder
        for pos in sorted({0, n // 2, n - 1}):
            quats = torch.randn(n, 4)
            assert not ext.any_zero_quaternion(quats)
            quats[pos] = torch.tensor([0.0, 0.0, 1e-45, 0.0])  # tiny but not zero, as torch sees it
            assert not ext.any_zero_quaternion(quats)
            assert bool((quats.abs() @ torch.ones(4)).min() > 0)
            quats[pos] = torch.tensor([-0.0, 0.0, -0.0, 0.0])
            assert ext.any_zero_quaternion(quats), (n, pos)


def test_bad_options(make_scene):
    scene = make_scene(n=10)
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(**scene, render_mode="RGBD")
    with pytest.raises(ValueError, match="backgrounds"):
        rasterize(**scene, backgrounds=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="backend"):
        rasterize(**scene, backend="metal")
    with pytest.raises(ValueError, match="near_plane"):
        rasterize(**scene, near_plane=0.0)
    with pytest.raises(ValueError, match="sh_degree"):
        rasterize(**scene, sh_degree=1)  # plain colors
    sh = make_scene(n=10, sh_degree=1)
    with pytest.raises(ValueError, match="sh_degree"):
        rasterize(**sh, sh_degree=2)  # needs 9 coefficients, has 4
    with pytest.raises(ValueError, match="float32"):
        rasterize(**make_scene(n=10, dtype=torch.float64), backend="cpu")


def test_lower_sh_degree_uses_a_prefix(cpu_backend, make_scene):
    scene = make_scene(n=50, sh_degree=3)
    low, _, _ = rasterize(**scene, sh_degree=1, backend="cpu")
    cut = dict(scene, colors=scene["colors"][:, :4].contiguous())
    ref, _, _ = rasterize(**cut, backend="cpu")
    torch.testing.assert_close(low, ref, atol=0, rtol=0)


def test_auto_backend_choices(cpu_backend, make_scene):
    _, _, meta = rasterize(**make_scene(n=20))
    assert meta.backend == "cpu"
    with pytest.warns(RuntimeWarning, match="torch reference"):
        from splat.rasterizer import backends

        backends._warned.discard(f"dtype-{torch.float64}")
        _, _, meta = rasterize(**make_scene(n=20, dtype=torch.float64))
    assert meta.backend == "torch"


def test_gradients_reach_viewmats_and_means2d(cpu_backend, make_scene):
    scene = make_scene(n=100, cameras=2)
    scene["viewmats"].requires_grad_(True)
    colors, alphas, meta = rasterize(**scene, backend="cpu")
    meta.means2d.retain_grad()
    colors.sum().backward()
    assert meta.means2d.grad.shape == (2, 100, 2) and meta.means2d.grad.abs().sum() > 0
    assert scene["viewmats"].grad[:, :3].abs().sum() > 0
    assert scene["viewmats"].grad[:, 3].abs().sum() == 0  # bottom row is constant


def test_meta_statistics(cpu_backend, make_scene):
    scene = make_scene(n=150, cameras=2)
    colors, alphas, meta = rasterize(**scene, backend="cpu")
    C, N = 2, 150
    assert meta.radii.shape == (C, N, 2) and meta.radii.dtype == torch.int32
    assert meta.accum_weights.shape == (C, N) and meta.pixel_counts.shape == (C, N)
    # every pixel's alpha is the sum of its blending weights
    torch.testing.assert_close(meta.accum_weights.sum(dim=1), alphas.sum(dim=(1, 2, 3)), rtol=1e-4, atol=1e-3)
    assert (meta.pixel_counts[meta.radii.amax(-1) == 0] == 0).all()
    assert meta["radii"] is meta.radii


def _run_twice(scene, threads):
    torch.set_num_threads(threads)
    outs = []
    for _ in range(2):
        inputs = {k: v.clone().requires_grad_(True) if isinstance(v, torch.Tensor) and k != "Ks" else v for k, v in scene.items()}
        colors, alphas, meta = rasterize(**inputs, backend="cpu")
        (colors.square().sum() + alphas.sum()).backward()
        outs.append([colors.detach(), alphas.detach(), meta.accum_weights] +
                    [inputs[k].grad for k in ("means", "quats", "scales", "opacities", "colors", "viewmats")])  # fmt: skip
    return outs


def test_bit_identical_across_runs_and_thread_counts(cpu_backend, make_scene):
    scene = make_scene(n=3000, cameras=2, width=96, height=80, seed=9)
    previous = torch.get_num_threads()
    ext = cpu_backend.load_extension()
    default_work = ext.set_min_parallel_work_ns(0.0)  # every loop in parallel, however small
    try:
        one = _run_twice(scene, 1)
        two = _run_twice(scene, 2)
    finally:
        torch.set_num_threads(previous)
        ext.set_min_parallel_work_ns(default_work)
    for a, b, c, d in zip(*one, *two):
        assert torch.equal(a, b), "run-to-run difference"
        assert torch.equal(c, d), "run-to-run difference"
        assert torch.equal(a, c), "result depends on the thread count"


def test_import_does_not_compile(tmp_path):
    """`import splat, splat.rasterizer` never builds an extension or touches CUDA."""
    code = (
        "import sys, splat, splat.rasterizer, splat.datasets, splat.viewer, splat.compression\n"
        "from splat.rasterizer import build\n"
        "assert not build._loaded, build._loaded\n"
        "assert 'torch.utils.cpp_extension' not in sys.modules\n"
    )
    env = {"SPLAT_BUILD_DIR": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert not (tmp_path / "empty").exists()


def test_concurrent_loads_and_a_leftover_torch_lock(cpu_backend):
    """Processes loading the cached build at once all get the compiled backend,
    and a lock file left by a killed build does not block them. (Two loads at
    once used to remove torch's lock under each other: one process failed and
    fell back to the torch reference.)"""
    from splat.rasterizer import build

    ext = cpu_backend.load_extension()
    out = Path(ext.__file__).parent
    (out / "lock").touch()  # what a build killed midway leaves behind
    code = "from splat.rasterizer import build; build.load_cpu(); print('loaded')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]  # fmt: skip
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0 and stdout.strip() == "loaded", stderr[-2000:]
        assert "compiling" not in stderr, "the cached build was rebuilt"
    assert not (out / "lock").exists()
    assert build.build_dir() in out.parents


def test_a_new_build_prunes_old_builds_but_not_the_recent_or_locked(tmp_path, monkeypatch):
    """Each source change leaves a build behind (this repository's machine had 68,
    174 MB): a new build keeps the KEEP_BUILDS most recently used of its backend,
    skips one another process holds, and leaves other backends alone."""
    import fcntl
    import os

    from splat.rasterizer import build

    monkeypatch.setenv("SPLAT_BUILD_DIR", str(tmp_path))
    folders = [tmp_path / f"splat_cpu_{i:012x}" for i in range(7)]
    for age, folder in enumerate(reversed(folders)):  # folders[0] is the oldest
        folder.mkdir()
        (folder / "splat-build.lock").touch()
        os.utime(folder / "splat-build.lock", (1e9 - age * 100, 1e9 - age * 100))
    other = tmp_path / "splat_cuda_000000000000"
    other.mkdir()
    with open(folders[1] / "splat-build.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process loading it
        deleted = build.prune_old_builds("splat_cpu", current=folders[6])
    assert build.KEEP_BUILDS == 4
    assert sorted(deleted) == [folders[0], folders[2]]
    assert sorted(p for p in tmp_path.iterdir()) == sorted([folders[1], *folders[3:], other])


def test_extension_sources_include_only_their_own_headers():
    """Every quoted #include in rasterizer/csrc is a relative path to a file in
    rasterizer/csrc: an absolute path builds on the machine that has it and
    nowhere else (an experiment's /tmp header once slipped in this way)."""
    import re

    csrc = Path(__file__).resolve().parents[1] / "rasterizer" / "csrc"
    sources = [p for p in csrc.rglob("*") if p.suffix in {".h", ".cuh", ".cpp", ".cu"}]
    assert len(sources) > 10
    for source in sources:
        for header in re.findall(r'^\s*#\s*include\s+"([^"]+)"', source.read_text(), flags=re.M):
            target = (source.parent / header).resolve()
            assert not Path(header).is_absolute(), f"{source.name} includes {header}"
            assert target.is_file() and csrc in target.parents, f"{source.name} includes {header}"
