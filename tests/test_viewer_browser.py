"""End to end: `splat view`'s server in a real browser (Debian's chromium via Playwright).

Skipped only when chromium or the playwright package is missing (CI installs both:
`apt-get install -y chromium`, `pip install playwright`; no browser download needed).
"""

from __future__ import annotations

import io
import os
import shutil
import time

import numpy as np
import pytest
import torch

CHROMIUM = os.environ.get("SPLAT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason=f"chromium not installed ({CHROMIUM}); apt-get install -y chromium"),  # fmt: skip
]


def _png(page) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(np.int16)


def _wait(cond, timeout: float, what: str):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    from splat.procedural import surface_scene
    from splat.scene import GaussianScene
    from splat.viewer.server import ViewerServer

    d = surface_scene(20_000, seed=0, sh_degree=2)
    scene = GaussianScene.from_tensors(d["means"], d["quats"], d["scales"], d["opacities"], d["colors"],
                                       activated=True)  # fmt: skip
    path = tmp_path_factory.mktemp("view") / "scene.ply"
    scene.save(path)
    import splat

    loaded = splat.load(path)  # what `splat view` shows
    with torch.no_grad():  # warm up (and, on a fresh machine, compile) the rasterizer first
        loaded.render(torch.eye(4), torch.eye(3) * 10, 8, 8)
    v = ViewerServer(loaded, host="127.0.0.1", port=0, source=str(path))
    yield v
    v.stop()


def test_browser_shows_server_frames_and_render_mode_changes_them(viewer):
    pw = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with pw.sync_playwright() as p:
        exe = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
        browser = p.chromium.launch(executable_path=exe, args=ARGS, headless=True, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 600})
            page.set_default_timeout(30_000)
            page.goto(viewer.url, wait_until="load")
            page.wait_for_selector("text=Render mode")

            # the first server frame: a client connected, its scheduler rendered at full resolution
            _wait(lambda: viewer._schedulers and all(s.last_frame is not None and s.last_frame.full
                                                     for s in viewer._schedulers.values()),
                  60, "the first full-resolution server frame")  # fmt: skip
            (sched,) = viewer._schedulers.values()
            frame = sched.last_frame
            assert frame.image.shape[:2] == (frame.state.height, frame.state.width)
            server_cover = (frame.image.max(axis=-1) > 10).mean()
            assert server_cover > 0.05, "the scene is not in the initial view"

            # the browser shows it: the background image is black where there is no splat
            # (our background) and colored where the scene is; the page itself is white
            def shows_scene():
                img = _png(page)
                canvas = img[:, : int(img.shape[1] * 0.6)]  # left of the GUI panel
                dark = (canvas.max(axis=-1) < 40).mean()  # our black render background
                colored = (canvas.max(axis=-1) - canvas.min(axis=-1) > 40).mean()  # red/green/blue spheres
                return dark > 0.2 and colored > 0.01

            _wait(shows_scene, 30, "the server frame in the browser")
            rgb_shot = _png(page)
            page.screenshot(path=str(viewer_dir(viewer) / "rgb.png"))

            # change the render mode control in the GUI -> a new server frame, different image
            before = sched.frames
            select = page.get_by_label("Render mode")
            try:
                select.select_option("Depth", timeout=5_000)
            except Exception:  # Mantine combobox rather than a native <select>
                select.click()
                page.get_by_role("option", name="Depth", exact=True).click()
            _wait(lambda: viewer.render_mode == "Depth", 15, "the render-mode change to reach the server")
            _wait(lambda: sched.frames > before and sched.last_frame.full, 30, "a depth frame")
            depth_frame = sched.last_frame.image
            assert np.abs(depth_frame.astype(int) - frame.image.astype(int)).mean() > 10

            def changed():
                img = _png(page)
                return np.abs(img - rgb_shot)[:, : int(img.shape[1] * 0.6)].mean() > 8

            _wait(changed, 30, "the browser to show the depth view")
            page.screenshot(path=str(viewer_dir(viewer) / "depth.png"))
            depth_shot = _png(page)
            canvas = depth_shot[:, : int(depth_shot.shape[1] * 0.6)]
            # Turbo colormap: blue-ish near, red-ish far -> many saturated non-sphere colors
            assert (canvas.max(axis=-1) - canvas.min(axis=-1) > 60).mean() > 0.05
        finally:
            browser.close()


def viewer_dir(viewer):
    from pathlib import Path

    d = Path(viewer.source).parent
    return d
