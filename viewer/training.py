"""TrainingViewer: the web viewer attached to a running trainer (`splat train --viewer`).

Implements `splat.training.observer.TrainingObserver` (on_start / on_step / on_end).
The training thread only appends the step's metrics to a deque and, every
`refresh_every` steps (when the CPU budget allows), takes `trainer.snapshot()`;
everything else (preparing the scene for rendering, client-side splats, GUI text and
plots, server-side frames) runs on viewer threads, rate-limited by a token bucket so
the viewer's CPU time stays under `max_share` of wall time while training runs.
Pausing (`trainer.paused`, a threading.Event: set = paused) lifts the limit.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any

import numpy as np


class CpuBudget:
    """Token bucket: viewer work may use `share` of wall-clock time (bursts up to `burst_s`)."""

    def __init__(self, share: float = 0.03, burst_s: float = 0.05) -> None:
        self.share, self.burst_s = share, burst_s
        self._tokens = burst_s
        self._t = time.perf_counter()
        self._lock = threading.Lock()
        self.unlimited = threading.Event()  # set: no limit (training paused or finished)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst_s, self._tokens + (now - self._t) * self.share)
        self._t = now

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._refill(time.perf_counter())
            if not self.unlimited.is_set():
                self._tokens -= seconds

    def delay(self, now: float | None = None) -> float:
        """Seconds to wait before the next piece of work fits the budget (0: go)."""
        if self.unlimited.is_set():
            return 0.0
        with self._lock:
            self._refill(time.perf_counter() if now is None else now)
            return 0.0 if self._tokens >= 0 else -self._tokens / self.share

    def available(self) -> bool:
        return self.delay() == 0.0


class TrainingViewer:
    """Web viewer for a training run; pass it to the trainer as an observer."""

    def __init__(self, trainer: Any = None, host: str = "127.0.0.1", port: int = 8080, refresh_every: int = 100,
                 max_share: float = 0.03, render: str = "server", verbose: bool = True,
                 history: int = 100_000) -> None:  # fmt: skip
        self.trainer = trainer
        self.host, self.port = host, port
        self.refresh_every = max(1, int(refresh_every))
        self.budget = CpuBudget(max_share)
        self.render = render
        self.verbose = verbose
        self.viewer = None
        self.url: str | None = None
        self.history: collections.deque = collections.deque(maxlen=history)  # (step, time, metrics)
        self._last_refresh_step = -(10**9)
        self._pending: Any = None  # snapshot waiting for the refresh thread
        self._refresh_due = threading.Event()  # set: a scene refresh waits for the budget
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.refreshes = 0
        self.snapshot_seconds = 0.0
        self._t_start = time.perf_counter()
        self._finished = False
        self.step = 0

    # --- TrainingObserver ---------------------------------------------------------------------

    def on_start(self, trainer) -> None:
        from splat.viewer.server import ViewerServer

        self.trainer = trainer
        t0 = time.perf_counter()
        scene = trainer.snapshot()
        self.viewer = ViewerServer(scene, host=self.host, port=self.port, render=self.render,
                                   data=getattr(trainer, "data", None), title="splat train",
                                   throttle=self._throttle, source=None)  # fmt: skip
        self.viewer.render = self._budgeted(self.viewer.render)
        self.url = self.viewer.url
        self._build_gui()
        self._t_start = time.perf_counter()
        for target, name in ((self._refresh_loop, "splat-viewer-refresh"), (self._ui_loop, "splat-viewer-ui")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if self.verbose:
            print(f"splat viewer: open {self.url} to watch training "
                  f"(ready in {time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip

    def on_step(self, trainer, step: int, metrics: dict[str, float]) -> None:
        # Training thread: O(1) unless a refresh is due.
        self.step = step
        self.history.append((step, time.perf_counter(), metrics))
        due = step - self._last_refresh_step >= self.refresh_every and self._pending is None
        if due and not self.budget.available():
            self._refresh_due.set()  # server frames hold back until the refresh gets its turn
        elif due:
            self._refresh_due.clear()
            self._last_refresh_step = step
            t0 = time.perf_counter()
            snap = trainer.snapshot()  # on the training thread: consistent tensors
            dt = time.perf_counter() - t0
            self.snapshot_seconds += dt
            self.budget.spend(dt)
            self._pending = (step, snap)
            self._wake.set()

    def on_end(self, trainer) -> None:
        self._finished = True
        self._refresh_due.clear()
        self.budget.unlimited.set()
        self._pending = (self.step, trainer.snapshot())
        self._wake.set()

    # --- viewer threads -----------------------------------------------------------------------

    def _paused(self) -> bool:
        ev = getattr(self.trainer, "paused", None)
        return bool(ev is not None and ev.is_set())

    def _throttle(self, now: float) -> float:
        if self._paused() or self._finished:
            return 0.0
        # Scene refreshes come first: while one is due, frames leave the budget to it
        # (otherwise a watching browser spends every token and training never refreshes).
        delay = self.budget.delay(now)
        return max(delay, 0.02) if self._refresh_due.is_set() else delay

    def _budgeted(self, fn):
        def wrapped(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.budget.spend(time.perf_counter() - t0)

        return wrapped

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            job, self._pending = self._pending, None
            if job is None or self.viewer is None:
                continue
            step, snap = job
            t0 = time.perf_counter()
            try:
                self.viewer.set_scene(snap)
                self.refreshes += 1
            finally:
                self.budget.spend(time.perf_counter() - t0)

    def _build_gui(self) -> None:
        gui = self.viewer.server.gui
        with gui.add_folder("Training", order=-1):
            self._stats = gui.add_markdown("starting")
            self._pause = gui.add_button("Pause training")
            self._refresh_gui = gui.add_number("Refresh every (steps)", self.refresh_every, min=1, step=1)
            self._share_gui = gui.add_slider("Viewer CPU %", 1, 50, 1, round(100 * self.budget.share),
                                             hint="share of wall time the viewer may use while training runs "
                                             "(server frames, refreshes); no limit while paused")  # fmt: skip
            self._loss_plot = self._plot(gui, "loss")
            self._psnr_plot = self._plot(gui, "PSNR (dB)")

        @self._pause.on_click
        def _(_) -> None:
            self.toggle_pause()

        @self._refresh_gui.on_update
        def _(_) -> None:
            self.refresh_every = max(1, int(self._refresh_gui.value))

        @self._share_gui.on_update
        def _(_) -> None:
            self.budget.share = max(0.01, float(self._share_gui.value) / 100.0)

    @staticmethod
    def _plot(gui, label: str):
        x = np.zeros(1)
        return gui.add_uplot(data=(x, np.full(1, np.nan)), series=({"label": "step"}, {"label": label, "stroke": "#e67700", "width": 2}),
                             title=label, aspect=2.0)  # fmt: skip

    def toggle_pause(self) -> None:
        ev = getattr(self.trainer, "paused", None)
        if ev is None:
            return
        if ev.is_set():
            ev.clear()
            self._pause.label = "Pause training"
        else:
            ev.set()
            self._pause.label = "Resume training"
            # show the exact paused state: take a snapshot now (training is idle)
            self._pending = (self.step, self.trainer.snapshot())
            self._wake.set()

    def _ui_loop(self) -> None:
        last_len = -1
        while not self._stop.wait(1.0):
            if self.viewer is None:
                continue
            if self._paused() or self._finished:
                self.budget.unlimited.set()
            else:
                self.budget.unlimited.clear()
            hist = list(self.history)
            t0 = time.perf_counter()
            try:
                self._stats.content = self.stats_text(hist)
                if len(hist) != last_len and hist:
                    last_len = len(hist)
                    self._update_plots(hist)
            except Exception:
                return  # server stopped
            self.budget.spend(time.perf_counter() - t0)

    def stats_text(self, hist: list) -> str:
        if not hist:
            return "waiting for the first step"
        step, t, m = hist[-1]
        recent = [h for h in hist if h[1] >= t - 5.0]
        rate = (recent[-1][0] - recent[0][0]) / max(recent[-1][1] - recent[0][1], 1e-9) if len(recent) > 1 else 0.0
        state = "finished" if self._finished else ("**paused**" if self._paused() else "training")
        scene = self.viewer.scene() if self.viewer else None
        lines = [f"step **{step:,}** · {state} · {rate:.1f} steps/s"]
        if scene is not None:
            lines.append(f"{len(scene):,} Gaussians (at the last refresh) · SH degree {scene.sh_degree}")
        metrics = " · ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float)) and math.isfinite(v))
        if metrics:
            lines.append(metrics)
        lines.append(f"scene refreshed {self.refreshes}x (every {self.refresh_every} steps)")
        return "\n\n".join(lines)

    def _update_plots(self, hist: list) -> None:
        stride = max(1, len(hist) // 500)
        pts = hist[::stride]
        steps = np.array([h[0] for h in pts], dtype=np.float64)
        for key, plot in (("loss", self._loss_plot), ("psnr", self._psnr_plot)):
            vals = np.array([float(h[2].get(key, np.nan)) for h in pts], dtype=np.float64)
            plot.data = (steps, vals)

    # --- lifecycle ----------------------------------------------------------------------------

    def wait(self, seconds: float | None = None) -> None:
        """Keep serving after training (until Ctrl-C or `seconds`), then close."""
        if self.viewer is not None:
            self.viewer.wait(seconds)
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=5.0)
        if self.viewer is not None:
            self.viewer.stop()
