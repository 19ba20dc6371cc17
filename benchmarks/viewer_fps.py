"""Viewer benchmark (results in docs/viewer.md and docs/benchmarks.md).

    python benchmarks/viewer_fps.py [--gaussians 300000] [--startup-gaussians 1000000] [--frames 30]

1. Server-side frames per second at 640x480 for a procedural scene (default 300k
   Gaussians, SH degree 3): the render (`render_view`, what the viewer runs for each
   camera update), the JPEG encoding, and the adaptive resolution the viewer picks
   while the camera moves (target 15 fps).
2. Time from `splat view` to the first frame for a 1M-Gaussian ply: load, server
   start, a headless chromium (Playwright, /usr/bin/chromium) connecting, the first
   server frame (reduced resolution while unknown) and the first full-resolution one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch


def make_scene(n: int):
    from splat.procedural import surface_scene
    from splat.scene import GaussianScene

    d = surface_scene(n, seed=0, sh_degree=3)
    return GaussianScene.from_tensors(d["means"], d["quats"], d["scales"], d["opacities"], d["colors"],
                                      activated=True)  # fmt: skip


def bench_fps(n: int, frames: int) -> None:
    from splat.procedural import intrinsics, orbit_camera
    from splat.viewer.camera import CameraState
    from splat.viewer.render import AdaptiveResolution, PreparedScene, encode_jpeg, render_view, to_uint8

    scene = make_scene(n)
    prep = PreparedScene.from_scene(scene)
    K = intrinsics(640, 480, 60.0)
    states = [CameraState.from_viewmat(orbit_camera(7.0 * i), K, 640, 480) for i in range(frames + 3)]
    for s in states[:3]:  # warm-up
        render_view(prep, s)
    render_ms, encode_ms = [], []
    ctrl = AdaptiveResolution(target_fps=15.0)
    for s in states[3:]:
        t0 = time.perf_counter()
        img = to_uint8(render_view(prep, s))
        t1 = time.perf_counter()
        encode_jpeg(img, 85)
        t2 = time.perf_counter()
        render_ms.append(1e3 * (t1 - t0))
        encode_ms.append(1e3 * (t2 - t1))
        ctrl.record(640 * 480, t1 - t0)
    # a few reduced frames so the controller can fit its fixed + per-pixel model
    for sc in (0.5, 0.7):
        for s in states[3:8]:
            w, h = s.scaled_size(sc)
            t0 = time.perf_counter()
            render_view(prep, s, size=(w, h))
            ctrl.record(w * h, time.perf_counter() - t0)
    r, e = statistics.median(render_ms), statistics.median(encode_ms)
    scale = ctrl.moving_scale(640, 480)
    w, h = states[3].scaled_size(scale)
    moving = []
    for s in states[3:13]:
        t0 = time.perf_counter()
        encode_jpeg(to_uint8(render_view(prep, s, size=(w, h))), 85)
        moving.append(time.perf_counter() - t0)
    m = statistics.median(moving)
    print(f"server-side 640x480, {n:,} Gaussians (SH 3), {torch.get_num_threads()} threads, {frames} orbit frames:")
    print(f"  render {r:.1f} ms (median; min {min(render_ms):.1f}, max {max(render_ms):.1f}) -> {1e3 / r:.1f} fps")
    print(f"  + JPEG q85 {e:.1f} ms -> {1e3 / (r + e):.1f} fps full resolution")
    print(f"  while moving: adaptive scale {scale:.2f} ({w}x{h}) -> {1 / m:.1f} fps incl. JPEG")


def bench_startup(n: int, timeout: float) -> None:
    import splat
    from splat.viewer.server import ViewerServer

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scene.ply")
        make_scene(n).save(path)
        size = os.path.getsize(path) / 2**20
        t0 = time.perf_counter()
        scene = splat.load(path)
        t_load = time.perf_counter() - t0
        viewer = ViewerServer(scene, port=0, source=path)
        t_server = time.perf_counter() - t0
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            print("startup: playwright not installed; skipped")
            viewer.stop()
            return
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
                page = browser.new_page(viewport={"width": 640, "height": 480})
                t_browser = time.perf_counter() - t0
                page.goto(viewer.url)
                t_first = t_full = None
                end = time.perf_counter() + timeout
                while time.perf_counter() < end and t_full is None:
                    for sched in list(viewer._schedulers.values()):
                        f = sched.last_frame
                        if f is not None and t_first is None:
                            t_first = time.perf_counter() - t0
                            first_size = f.image.shape[1::-1]
                        if f is not None and f.full:
                            t_full = time.perf_counter() - t0
                            full_size = f.image.shape[1::-1]
                    time.sleep(0.01)
                browser.close()
        finally:
            viewer.stop()
    print(f"time to first frame, {n:,}-Gaussian ply ({size:.0f} MiB), in-process `splat view` + headless chromium:")
    print(f"  load {t_load:.2f} s, server up {t_server:.2f} s, browser launched {t_browser:.2f} s")
    if t_first is None:
        print(f"  no frame within {timeout:.0f} s")
        return
    print(f"  first frame {t_first:.2f} s ({first_size[0]}x{first_size[1]}), "
          f"full resolution {t_full:.2f} s ({full_size[0]}x{full_size[1]})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=300_000)
    ap.add_argument("--startup-gaussians", type=int, default=1_000_000)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--skip-startup", action="store_true")
    a = ap.parse_args()
    bench_fps(a.gaussians, a.frames)
    if not a.skip_startup:
        bench_startup(a.startup_gaussians, a.timeout)


if __name__ == "__main__":
    main()
