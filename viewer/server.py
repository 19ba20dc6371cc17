"""ViewerServer: a viser server showing a GaussianScene, with our rasterizer as server renderer.

    viewer = ViewerServer(splat.load("scene.ply"), host="127.0.0.1", port=8080)
    print(viewer.url); viewer.wait()

Two render paths, switched in the GUI ("Renderer"):
  * server: `render.render_view` for each camera update of each browser, sent as a JPEG
    background (exact SH color, depth / alpha / expected-depth and registered modes),
    adaptive resolution and latest-wins scheduling (`render.FrameScheduler`);
  * client: viser's WebGL Gaussian splats (degree-0 color), uploaded on first use.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splat.errors import SplatError
from splat.viewer.camera import CameraState, K_to_fov, viewmat_to_viser
from splat.viewer.path import CameraPath, Keyframe
from splat.viewer.render import (RENDER_MODES, AdaptiveResolution, Frame, FrameScheduler, PreparedScene,
                                 encode_png, render_view, to_uint8)  # fmt: skip

SH_C0 = 0.28209479177387814


def splat_buffers(scene) -> dict[str, np.ndarray]:
    """Arrays for viser's `add_gaussian_splats`: centers, covariances, rgbs (degree-0), opacities."""
    with torch.no_grad():
        s = scene.detach().to("cpu")
        R = _quat_matrices(s.unit_quats.float())  # [N, 3, 3]
        M = R * s.scales.float()[:, None, :]
        cov = M @ M.transpose(1, 2)
        rgb = (0.5 + SH_C0 * s.sh0[:, 0].float()).clamp(0.0, 1.0)
        return {"centers": s.means.float().numpy(), "covariances": cov.numpy(), "rgbs": rgb.numpy(),
                "opacities": s.opacities.float()[:, None].numpy()}  # fmt: skip


def _quat_matrices(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def scene_stats(scene) -> str:
    n = len(scene)
    return (f"**{n:,}** Gaussians · SH degree **{scene.sh_degree}** · "
            f"**{scene.num_bytes / 2**20:,.1f} MiB**" + (" · antialiased" if scene.antialiased else ""))  # fmt: skip


def _scene_frame(means: torch.Tensor) -> tuple[np.ndarray, float]:
    """Robust center (median) and extent (90th percentile distance) of the splat centers."""
    m = means.detach().float().cpu()
    if m.shape[0] > 200_000:
        m = m[torch.randperm(m.shape[0], generator=torch.Generator().manual_seed(0))[:200_000]]
    if m.shape[0] == 0:
        return np.zeros(3), 1.0
    center = m.median(dim=0).values
    extent = float(torch.quantile((m - center).norm(dim=-1), 0.9)) if m.shape[0] > 1 else 1.0
    return center.numpy().astype(np.float64), max(extent, 1e-3)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class ViewerServer:
    """A running viewer for one scene (see module docstring). Thread-safe `set_scene`."""

    def __init__(self, scene, *, host: str = "127.0.0.1", port: int = 8080, render: str = "server",
                 data: Any = None, title: str = "splat", source: str | None = None, up: str = "auto",
                 jpeg_quality: int = 85, target_fps: float = 15.0, max_frustums: int = 200,
                 throttle=None, verbose: bool = True) -> None:  # fmt: skip
        import viser

        if render not in ("server", "client"):
            raise SplatError(f"--render {render}: expected 'server' or 'client'")
        self._lock = threading.RLock()
        self._prep = PreparedScene.from_scene(scene)
        self._scene = scene
        self.data = data
        self.source = source
        self.jpeg_quality = jpeg_quality
        self.target_fps = target_fps
        self.throttle = throttle
        self.verbose = verbose
        self._max_frustums = max_frustums
        self.render_mode = "RGB"
        self.background = (0.0, 0.0, 0.0)
        self.renderer = render
        self._schedulers: dict[int, FrameScheduler] = {}
        self._splats = None  # client-side splat node, created on first use
        self._splats_dirty = True
        self.path = CameraPath()
        self.last_screenshot: np.ndarray | None = None
        self._closed = threading.Event()  # set by stop(); also wakes the status loop to end

        self.requested_port = port
        self.port_was_busy = not _port_free(host if host not in ("0.0.0.0", "") else "0.0.0.0", port)
        with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own URL table; we print ours
            self.server = viser.ViserServer(host=host, port=port, label=title, verbose=False)
        self.host = host
        self.port = self.server.get_port()
        shown = socket.gethostname() if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self.port}"

        self._center, self._extent = _scene_frame(self._prep.means)
        self._setup_frame()
        self._build_gui()
        self._add_dataset()
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)
        self._status_thread = threading.Thread(target=self._status_loop, name="splat-viewer-status", daemon=True)
        self._status_thread.start()
        if render == "client":
            self._ensure_splats()

    # --- scene and camera frame -----------------------------------------------------------

    def _setup_frame(self) -> None:
        up = None
        cams = getattr(self.data, "cameras", None)
        if cams is not None and len(cams.viewmats) > 0:
            # camera "up" (-y of each camera) averaged in world coordinates
            R = cams.viewmats[:, :3, :3].double()  # world-to-camera rotations
            ups = -R[:, 1, :]  # camera -y axis in world coordinates
            u = ups.mean(dim=0)
            if float(u.norm()) > 1e-6:
                up = (u / u.norm()).numpy()
        if up is None:
            up = np.array([0.0, -1.0, 0.0])  # COLMAP / 3DGS convention: y points down
        self.up = up
        self.server.scene.set_up_direction(tuple(float(v) for v in up))
        # initial view: a bit above, looking at the robust center from 2.2 extents away
        if cams is not None and len(cams.viewmats) > 0:
            # from the side of the first training camera, farther out (its own frustum and
            # thumbnail would otherwise fill the view)
            i = (getattr(self.data, "train_indices", None) or [0])[0]
            _, cam_pos = viewmat_to_viser(cams.viewmats[i])
            pos = self._center + 1.3 * (cam_pos - self._center)
            fov = K_to_fov(cams.Ks[i], int(cams.heights[i]))
        else:
            cand = np.array([0.0, 0.0, -1.0]) if abs(up[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
            h = cand - (cand @ up) * up
            h /= np.linalg.norm(h)
            pos = self._center + self._extent * (2.0 * h + 0.8 * up)
            fov = math.radians(55.0)
        look = self._center
        ic = self.server.initial_camera
        ic.position = tuple(float(v) for v in pos)
        ic.look_at = tuple(float(v) for v in look)
        ic.up = tuple(float(v) for v in up)
        ic.fov = float(fov)
        ic.near = max(1e-3, 1e-3 * self._extent)
        ic.far = 1e3 * self._extent

    def scene(self):
        return self._scene

    def set_scene(self, scene) -> None:
        """Show another scene (e.g. a training snapshot): stats, client splats and frames update."""
        prep = PreparedScene.from_scene(scene)
        with self._lock:
            self._prep, self._scene = prep, scene
            self._splats_dirty = True
        self._stats.content = scene_stats(scene) + (f"\n\n`{self.source}`" if self.source else "")
        if self.renderer == "client":
            self._ensure_splats()
        self.refresh()

    def refresh(self) -> None:
        """Re-render every connected browser's current view (server renderer)."""
        if self.renderer != "server":
            return
        for sched in list(self._schedulers.values()):
            sched.request(None, full=True)

    # --- rendering --------------------------------------------------------------------------

    def render(self, state: CameraState, size: tuple[int, int] | None = None, mode: str | None = None) -> np.ndarray:
        """The server-side frame for a camera state: [H, W, 3] uint8."""
        with self._lock:
            prep = self._prep
        return to_uint8(render_view(prep, state, mode or self.render_mode, self.background, size))

    def _send(self, client, frame: Frame) -> None:
        # viser lists a client until just after closing its connection; a frame
        # for one that has left would only draw a warning
        if self.renderer != "server" or self._closed.is_set() or client.client_id not in self.server.get_clients():
            return
        client.scene.set_background_image(frame.image, format="jpeg", jpeg_quality=self.jpeg_quality)

    def _on_connect(self, client) -> None:
        sched = FrameScheduler(
            lambda state, size: self.render(state, size),
            lambda frame: self._send(client, frame),
            AdaptiveResolution(target_fps=self.target_fps),
            throttle=self.throttle,
            name=f"splat-viewer-render-{client.client_id}",
        )
        with self._lock:
            self._schedulers[client.client_id] = sched

        @client.camera.on_update
        def _(camera) -> None:
            if self.renderer == "server":
                sched.request(CameraState.from_handle(camera))

        if self.renderer == "server":
            sched.request(CameraState.from_handle(client.camera), full=True)

    def _on_disconnect(self, client) -> None:
        with self._lock:
            sched = self._schedulers.pop(client.client_id, None)
        if sched is not None:
            sched.stop()

    def _ensure_splats(self) -> None:
        with self._lock:
            if self._splats is not None and not self._splats_dirty:
                self._splats.visible = True
                return
            scene = self._scene
            self._splats_dirty = False
        buffers = splat_buffers(scene)
        with self._lock:
            if self._splats is not None:
                self._splats.remove()
            self._splats = self.server.scene.add_gaussian_splats("/splats", **buffers)

    def set_renderer(self, renderer: str) -> None:
        self.renderer = renderer
        if renderer == "client":
            for client in self.server.get_clients().values():
                client.scene.set_background_image(None)
            self._ensure_splats()
        else:
            if self._splats is not None:
                self._splats.visible = False
            for client_id, client in self.server.get_clients().items():
                sched = self._schedulers.get(client_id)
                if sched is not None:
                    sched.request(CameraState.from_handle(client.camera), full=True)

    # --- GUI ---------------------------------------------------------------------------------

    def _build_gui(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Scene"):
            self._stats = gui.add_markdown(scene_stats(self._scene) + (f"\n\n`{self.source}`" if self.source else ""))
        with gui.add_folder("Render"):
            self._renderer_gui = gui.add_dropdown("Renderer", ("server", "client"), initial_value=self.renderer,
                                                  hint="server: our rasterizer, exact SH color and depth views; "
                                                  "client: WebGL splats in the browser (smooth, degree-0 color)")  # fmt: skip
            self._mode_gui = gui.add_dropdown("Render mode", tuple(RENDER_MODES), initial_value="RGB")
            self._bg_gui = gui.add_rgb("Background", (0, 0, 0))
            self._quality_gui = gui.add_slider("JPEG quality", 30, 100, 5, self.jpeg_quality)
            self._status = gui.add_markdown("waiting for a browser")
            shot = gui.add_button("Screenshot (PNG)")

        @self._renderer_gui.on_update
        def _(_) -> None:
            self.set_renderer(self._renderer_gui.value)

        @self._mode_gui.on_update
        def _(_) -> None:
            self.render_mode = self._mode_gui.value
            self.refresh()

        @self._bg_gui.on_update
        def _(_) -> None:
            self.background = tuple(c / 255.0 for c in self._bg_gui.value)
            self.refresh()

        @self._quality_gui.on_update
        def _(_) -> None:
            self.jpeg_quality = int(self._quality_gui.value)
            self.refresh()

        @shot.on_click
        def _(event) -> None:
            client = event.client
            if client is None:
                return
            png = self.screenshot(client)
            client.send_file_download(f"splat-{time.strftime('%Y%m%d-%H%M%S')}.png", png, save_immediately=True)

        with gui.add_folder("Camera path", expand_by_default=False):
            self._path_info = gui.add_markdown("0 keyframes")
            add = gui.add_button("Add keyframe")
            undo = gui.add_button("Remove last")
            clear = gui.add_button("Clear")
            self._path_fps = gui.add_number("FPS", 30.0, min=1.0, max=240.0, step=1.0)
            self._path_seconds = gui.add_number("Seconds", 4.0, min=0.0, max=3600.0, step=0.5)
            self._path_w = gui.add_number("Width", 1280, min=16, max=8192, step=1)
            self._path_h = gui.add_number("Height", 720, min=16, max=8192, step=1)
            self._path_loop = gui.add_checkbox("Loop", False)
            self._path_file = gui.add_text("File", "camera_path.json")
            save = gui.add_button("Save path")

        @add.on_click
        def _(event) -> None:
            if event.client is not None:
                self.add_keyframe(CameraState.from_handle(event.client.camera))

        @undo.on_click
        def _(_) -> None:
            if self.path.keyframes:
                self.path.keyframes.pop()
            self._update_path_info()

        @clear.on_click
        def _(_) -> None:
            self.path.keyframes.clear()
            self._update_path_info()

        @save.on_click
        def _(event) -> None:
            try:
                out = self.save_path(self._path_file.value)
                msg = f"saved {len(self.path.keyframes)} keyframes to `{out}`"
                if event.client is not None:
                    event.client.send_file_download(Path(out).name, Path(out).read_bytes())
            except (SplatError, OSError) as err:
                msg = f"not saved: {err}"
            self._path_info.content = msg

    def _update_path_info(self) -> None:
        n = len(self.path.keyframes)
        self._path_info.content = f"{n} keyframe{'s' if n != 1 else ''}"

    def add_keyframe(self, state: CameraState) -> None:
        self.path.keyframes.append(Keyframe(state.viewmat().double().numpy(), state.fov))
        self._update_path_info()

    def save_path(self, file: str | os.PathLike) -> str:
        p = self.path
        p.fps, p.seconds = float(self._path_fps.value), float(self._path_seconds.value)
        p.width, p.height, p.loop = int(self._path_w.value), int(self._path_h.value), bool(self._path_loop.value)
        p.save(file)
        return str(Path(file).resolve())

    def screenshot(self, client) -> bytes:
        """Full-resolution server render of this client's view, PNG bytes."""
        state = CameraState.from_handle(client.camera)
        image = self.render(state)
        self.last_screenshot = image
        return encode_png(image)

    def _status_loop(self) -> None:
        last = None
        while not self._closed.wait(0.5):
            lines = []
            for cid, s in list(self._schedulers.items()):
                f = s.last_frame
                if f is None:
                    continue
                h, w = f.image.shape[:2]
                lines.append(f"{w}x{h} in {f.seconds * 1e3:.0f} ms · {s.frames} frames, {s.dropped} dropped"
                             + (f" · {s.last_error}" if s.last_error else ""))  # fmt: skip
            text = "<br/>".join(lines) if lines else ("client-side splats" if self.renderer == "client"
                                                      else "waiting for a browser")  # fmt: skip
            if self.renderer == "client":
                text = "client-side (WebGL) splats"
            if text != last:
                try:
                    self._status.content = text
                except Exception:
                    return
                last = text

    # --- dataset: SfM points and training cameras --------------------------------------------

    def _add_dataset(self) -> None:
        data = self.data
        if data is None:
            return
        gui = self.server.gui
        pts = getattr(data, "points", None)
        with gui.add_folder("Dataset"):
            show_pts = gui.add_checkbox("SfM points", False)
            show_cams = gui.add_checkbox("Training cameras", True)
        self._points = None
        if pts is not None and len(pts) > 0:
            pts = torch.as_tensor(pts).float()
            cols = torch.as_tensor(getattr(data, "point_colors", torch.full_like(pts, 0.7))).float()
            if pts.shape[0] > 300_000:
                idx = torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(0))[:300_000]
                pts, cols = pts[idx], cols[idx]
            self._points = self.server.scene.add_point_cloud(
                "/sfm_points", pts.numpy(), (cols.clamp(0, 1) * 255).to(torch.uint8).numpy(),
                point_size=0.006 * self._extent, visible=False)  # fmt: skip

        @show_pts.on_update
        def _(_) -> None:
            if self._points is not None:
                self._points.visible = show_pts.value

        cams = getattr(data, "cameras", None)
        self._frustums = []
        if cams is None or len(cams.viewmats) == 0:
            return
        n = len(cams.viewmats)
        m = self._max_frustums
        idx = list(range(n)) if n <= m else [int(v) for v in np.linspace(0, n - 1, m).round()]
        centers = torch.linalg.inv(cams.viewmats[idx].double())[:, :3, 3]
        size = 0.08 * self._extent
        if len(idx) > 1:  # a third of the typical spacing between neighboring cameras
            d = torch.cdist(centers, centers) + torch.eye(len(idx), dtype=torch.float64) * 1e30
            size = min(size, 0.35 * float(d.min(dim=1).values.median()))
        for i in idx:
            vm, K = cams.viewmats[i], cams.Ks[i]
            w, h = int(cams.widths[i]), int(cams.heights[i])
            wxyz, pos = viewmat_to_viser(vm)
            fr = self.server.scene.add_camera_frustum(
                f"/cameras/{i:05d}", fov=K_to_fov(K, h), aspect=w / h, scale=size,
                thickness=0.05 * size, color=(255, 160, 40), wxyz=wxyz, position=pos)  # fmt: skip
            fr.on_click(self._jump_callback(i))
            self._frustums.append((i, fr))

        @show_cams.on_update
        def _(_) -> None:
            for _, fr in self._frustums:
                fr.visible = show_cams.value

        if hasattr(data, "image"):
            threading.Thread(target=self._load_thumbnails, name="splat-viewer-thumbs", daemon=True).start()

    def _jump_callback(self, i: int):
        def cb(event) -> None:
            if event.client is not None:
                self.jump_to_camera(event.client, i)

        return cb

    def jump_to_camera(self, client, i: int) -> None:
        """Move a browser's view to training camera i."""
        cams = self.data.cameras
        wxyz, pos = viewmat_to_viser(cams.viewmats[i])
        with client.atomic():
            client.camera.position = pos
            client.camera.wxyz = wxyz
            client.camera.fov = K_to_fov(cams.Ks[i], int(cams.heights[i]))

    def _load_thumbnails(self) -> None:
        from PIL import Image

        for i, fr in self._frustums:
            if self._closed.is_set():
                return
            try:
                img = self.data.image(i)  # [H, W, 3] float in [0, 1]
                arr = (torch.as_tensor(img).clamp(0, 1) * 255).to(torch.uint8).numpy()
                pil = Image.fromarray(arr)
                pil.thumbnail((128, 128))
                fr.image = np.asarray(pil)
            except Exception:  # a thumbnail is a nicety; a bad image must not stop the viewer
                continue

    # --- lifecycle -----------------------------------------------------------------------------

    def wait(self, seconds: float | None = None) -> None:
        """Serve until Ctrl-C (or for `seconds`)."""
        end = None if seconds is None else time.monotonic() + seconds
        try:
            while end is None or time.monotonic() < end:
                time.sleep(0.2 if end is None else min(0.2, max(0.0, end - time.monotonic())))
        finally:
            self.stop()

    def stop(self) -> None:
        if self._closed.is_set():
            return
        # the status text is a GUI element: no writes once the server stops
        self._closed.set()
        self._status_thread.join(timeout=5.0)
        for sched in list(self._schedulers.values()):
            sched.stop()
        with contextlib.redirect_stdout(io.StringIO()):
            self.server.stop()
