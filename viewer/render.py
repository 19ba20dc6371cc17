"""Server-side rendering: camera state -> image, adaptive resolution, latest-wins scheduling.

`render_view(prepared, state, mode, ...)` is the pure function (tested against
`GaussianScene.render`); `AdaptiveResolution` picks a render scale from measured render
times; `FrameScheduler` runs one render thread per browser, keeps only the newest camera
request (stale ones are dropped) and re-renders at full resolution once the camera stops.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from splat.viewer.camera import CameraState

# --- scene preparation ---------------------------------------------------------------------


@dataclass
class PreparedScene:
    """Activated tensors of a GaussianScene, computed once (not per frame)."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor  # [N, K, 3]
    sh_degree: int
    antialiased: bool
    scene: object = None  # the GaussianScene it came from
    extra: dict = field(default_factory=dict)  # per-mode caches (e.g. level-of-detail data)

    @classmethod
    def from_scene(cls, scene) -> PreparedScene:
        with torch.no_grad():
            s = scene.detach().to("cpu") if scene.device.type != "cpu" else scene
            return cls(s.means.float().contiguous(), s.quats.float().contiguous(), s.scales.float().contiguous(),
                       s.opacities.float().contiguous(), s.sh.float().contiguous(), s.sh_degree,
                       bool(s.antialiased), scene=scene)  # fmt: skip

    def __len__(self) -> int:
        return self.means.shape[0]


# --- render modes --------------------------------------------------------------------------

# A mode renders [H, W, 3] float in [0, 1] from (prepared scene, viewmat, K, width, height,
# background RGB tuple). Later trainers register their own (level of detail, streaming
# frame) with `register_render_mode`.
RenderFn = Callable[[PreparedScene, Tensor, Tensor, int, int, tuple], Tensor]
RENDER_MODES: dict[str, RenderFn] = {}


def register_render_mode(name: str, fn: RenderFn) -> None:
    """Add a render mode to the viewer's "Render mode" dropdown (name -> function)."""
    RENDER_MODES[name] = fn


def rasterize_view(prep: PreparedScene, viewmat: Tensor, K: Tensor, width: int, height: int,
                   **kwargs) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Forward-only render of one camera; returns (colors [H, W, D], alphas [H, W, 1])."""
    from splat.rasterizer import rasterize

    kwargs.setdefault("sh_degree", prep.sh_degree)
    kwargs.setdefault("antialiased", prep.antialiased)
    with torch.no_grad():
        colors, alphas, _ = rasterize(prep.means, prep.quats, prep.scales, prep.opacities, prep.sh,
                                      viewmat[None].float(), K[None].float(), int(width), int(height),
                                      **kwargs)  # fmt: skip
    return colors[0], alphas[0]


def _background(bg, channels: int = 3) -> Tensor:
    return torch.tensor(bg, dtype=torch.float32)[None, :channels]


def _rgb(prep, viewmat, K, w, h, bg):
    colors, _ = rasterize_view(prep, viewmat, K, w, h, backgrounds=_background(bg))
    return colors.clamp(0.0, 1.0)


def _alpha(prep, viewmat, K, w, h, bg):
    _, alphas = rasterize_view(prep, viewmat, K, w, h, render_mode="D")
    return alphas.expand(-1, -1, 3).clamp(0.0, 1.0)


def _depth_view(mode: str):
    def fn(prep, viewmat, K, w, h, bg):
        depth, alphas = rasterize_view(prep, viewmat, K, w, h, render_mode=mode)
        return colorize_depth(depth[..., 0], alphas[..., 0], bg)

    return fn


register_render_mode("RGB", _rgb)
register_render_mode("Depth", _depth_view("D"))  # alpha-weighted (accumulated) depth
register_render_mode("Expected depth", _depth_view("ED"))  # depth normalized by alpha
register_render_mode("Alpha", _alpha)


def turbo(x: Tensor) -> Tensor:
    """Google's Turbo colormap (polynomial fit), x in [0, 1] -> [..., 3]."""
    x = x.clamp(0.0, 1.0)[..., None]
    r = torch.tensor([0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943])
    g = torch.tensor([0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604])
    b = torch.tensor([0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973])
    powers = x ** torch.arange(6, dtype=x.dtype)  # [..., 6]
    return torch.stack([powers @ r, powers @ g, powers @ b], dim=-1).clamp(0.0, 1.0)


def colorize_depth(depth: Tensor, alpha: Tensor, bg=(0.0, 0.0, 0.0)) -> Tensor:
    """Depth [H, W] -> Turbo colors (near = blue, far = red) between the 1st and 99th
    percentile of covered pixels; uncovered pixels (alpha < 0.05) get the background."""
    valid = alpha > 0.05
    out = torch.empty(*depth.shape, 3)
    out[:] = _background(bg)[0]
    if valid.any():
        d = depth[valid]
        if d.numel() > 200_000:
            d = d[torch.randperm(d.numel())[:200_000]]
        lo, hi = torch.quantile(d, torch.tensor([0.01, 0.99])).tolist()
        t = (depth - lo) / max(hi - lo, 1e-8)
        out[valid] = turbo(t[valid])
    return out


def render_view(prep: PreparedScene, state: CameraState, mode: str = "RGB",
                background=(0.0, 0.0, 0.0), size: tuple[int, int] | None = None) -> Tensor:  # fmt: skip
    """The server-side render: viser camera state -> [H, W, 3] float image in [0, 1].

    `size` = (width, height) of the render (default: the canvas size); the field of view
    stays the client's, so a smaller render is the same view at lower resolution.
    """
    width, height = size or (state.width, state.height)
    fn = RENDER_MODES.get(mode)
    if fn is None:
        raise ValueError(f"unknown render mode {mode!r}; known: {', '.join(RENDER_MODES)}")
    return fn(prep, state.viewmat(), state.K(width, height), width, height, tuple(background))


def to_uint8(image: Tensor) -> np.ndarray:
    return (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).numpy()


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


# --- adaptive resolution -------------------------------------------------------------------


class AdaptiveResolution:
    """Chooses the render scale from measured render times.

    Keeps the last renders' (pixels, seconds) and fits `seconds = fixed + per_pixel *
    pixels` (projection and sorting cost does not shrink with resolution). While the
    camera moves, the scale is the largest that fits `1 / target_fps`; once it stops,
    the scheduler renders at scale 1.
    """

    def __init__(self, target_fps: float = 15.0, min_scale: float = 0.2, max_scale: float = 1.0,
                 history: int = 12) -> None:  # fmt: skip
        self.target_fps = target_fps
        self.min_scale, self.max_scale = min_scale, max_scale
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=history)

    def record(self, pixels: int, seconds: float) -> None:
        self.samples.append((float(pixels), float(seconds)))

    def model(self) -> tuple[float, float]:
        """(fixed seconds, seconds per pixel) fitted to the recent renders."""
        if not self.samples:
            return 0.0, 0.0
        p = np.array([s[0] for s in self.samples])
        t = np.array([s[1] for s in self.samples])
        if len(p) >= 3 and p.std() > 0.05 * p.mean():
            b, a = np.polyfit(p, t, 1)
            if b > 0 and a >= 0:
                return float(a), float(b)
            if b > 0:
                return 0.0, float(np.median(t / p))
        # one resolution only: attribute a quarter to the fixed part (conservative for scaling)
        tm, pm = float(np.median(t)), float(np.median(p))
        return 0.25 * tm, 0.75 * tm / pm

    def predict(self, pixels: int) -> float:
        a, b = self.model()
        return a + b * pixels

    def moving_scale(self, width: int, height: int) -> float:
        """The largest scale whose predicted render time fits the interactive budget."""
        if not self.samples:
            return max(self.min_scale, min(self.max_scale, 0.5))
        a, b = self.model()
        budget = 1.0 / self.target_fps - a
        if b <= 0:
            return self.max_scale
        if budget <= 0.25 * a:
            # the per-splat work alone (projection, sorting) misses the target: lowering the
            # resolution further buys little, so keep the per-pixel part at a quarter of it
            budget = 0.25 * a
        s = math.sqrt(budget / (b * width * height))
        return float(min(self.max_scale, max(self.min_scale, s)))


# --- scheduling ----------------------------------------------------------------------------


@dataclass
class Frame:
    image: np.ndarray  # [h, w, 3] uint8
    state: CameraState
    seq: int  # request number it answers
    full: bool  # rendered at full resolution
    seconds: float  # render time (excluding encoding and sending)


class FrameScheduler:
    """One render thread per client; only the newest camera request is rendered.

    `request(state)` (called from viser's camera callback) stores the state and returns;
    requests that arrive while a render runs overwrite each other, so a backlog never
    builds (`dropped` counts the skipped ones). A frame is rendered at the adaptive
    scale while updates keep coming, and at full resolution once none came for
    `settle_s`. `throttle()` (optional) returns seconds to wait before the next render
    (the training viewer uses it to cap the viewer's CPU share).
    """

    def __init__(self, render: Callable[[CameraState, tuple[int, int]], np.ndarray],
                 send: Callable[[Frame], None], controller: AdaptiveResolution | None = None,
                 settle_s: float = 0.2, throttle: Callable[[float], float] | None = None,
                 name: str = "splat-viewer-render") -> None:  # fmt: skip
        self._render, self._send = render, send
        self.controller = controller or AdaptiveResolution()
        self.settle_s = settle_s
        self.throttle = throttle
        self._cond = threading.Condition()
        self._state: CameraState | None = None
        self._seq = 0  # newest request
        self._done_seq = 0  # newest request rendered (any resolution)
        self._full_seq = 0  # newest request rendered at full resolution
        self._last_request_t = 0.0
        self._prev_request_t = 0.0
        self._force_full = False
        self._stop = False
        self.dropped = 0
        self.frames = 0
        self.last_frame: Frame | None = None
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def request(self, state: CameraState | None = None, full: bool = False) -> None:
        """Ask for a frame of `state` (None: the last state again, e.g. after a mode change)."""
        with self._cond:
            if state is None:
                state = self._state
                if state is None:
                    return
            if self._seq > self._done_seq:
                self.dropped += 1  # the pending one was never rendered: superseded
            self._state = state
            self._seq += 1
            now = time.perf_counter()
            self._prev_request_t, self._last_request_t = self._last_request_t, now
            self._force_full = self._force_full or full
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=5.0)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the newest request has a full-resolution frame (tests, benchmarks)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self._cond:
                if self._seq and self._full_seq == self._seq:
                    return True
            time.sleep(0.005)
        return False

    def _next_job(self) -> tuple[CameraState, int, bool] | None:
        with self._cond:
            while not self._stop:
                now = time.perf_counter()
                if self._seq > self._done_seq:
                    moving = (now - self._prev_request_t) < self.settle_s and not self._force_full
                    full = not moving or self._fits_full(self._state)
                    self._force_full = False
                    return self._state, self._seq, full
                if self._seq and self._full_seq < self._seq:
                    wait = self.settle_s - (now - self._last_request_t)
                    if wait <= 0:
                        return self._state, self._seq, True
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _fits_full(self, state: CameraState) -> bool:
        c = self.controller
        return bool(c.samples) and c.predict(state.width * state.height) <= 1.0 / c.target_fps

    def _loop(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            state, seq, full = job
            if self.throttle is not None:
                # wait until the throttle says go (it can hold frames back, e.g. for a due
                # scene refresh), in short sleeps so that stop() is noticed
                pause = self.throttle(time.perf_counter())
                waited = pause > 0
                while pause > 0 and not self._stop:
                    time.sleep(min(pause, 0.1))
                    pause = self.throttle(time.perf_counter())
                if self._stop:
                    return
                if waited:
                    with self._cond:  # a newer request may have come in meanwhile: take it
                        if self._seq != seq:
                            state, seq = self._state, self._seq
            scale = 1.0 if full else self.controller.moving_scale(state.width, state.height)
            size = state.scaled_size(scale)
            t0 = time.perf_counter()
            try:
                image = self._render(state, size)
            except Exception as err:  # keep the thread alive; report in the GUI
                self.last_error = f"{type(err).__name__}: {err}"
                with self._cond:
                    self._done_seq = max(self._done_seq, seq)
                    self._full_seq = max(self._full_seq, seq)
                continue
            if self._stop:  # the client left while this frame rendered: its connection is closed
                return
            seconds = time.perf_counter() - t0
            self.controller.record(size[0] * size[1], seconds)
            frame = Frame(image, state, seq, full or scale >= 1.0, seconds)
            with self._cond:
                self._done_seq = max(self._done_seq, seq)
                if frame.full:
                    self._full_seq = max(self._full_seq, seq)
            self.frames += 1
            self.last_frame = frame
            try:
                self._send(frame)
            except Exception as err:  # client went away
                self.last_error = f"{type(err).__name__}: {err}"
