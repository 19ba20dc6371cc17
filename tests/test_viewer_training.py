"""TrainingViewer against a fake trainer: protocol, pause/resume, refresh, and < 10% overhead."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from splat.procedural import intrinsics, orbit_camera, surface_scene
from splat.scene import GaussianScene
from splat.viewer.camera import CameraState
from splat.viewer.render import FrameScheduler
from splat.viewer.training import CpuBudget, TrainingViewer


class FakeTrainer:
    """The interface `splat train` gives observers: snapshot(), data, step, paused, config."""

    def __init__(self, n: int = 20_000, work: int = 160, iters: int = 8) -> None:
        d = surface_scene(n, seed=3, sh_degree=1)
        self.params = {k: v.clone() for k, v in d.items()}
        self.step = 0
        self.paused = threading.Event()
        self.config = SimpleNamespace(max_steps=0)
        vms = torch.stack([orbit_camera(a) for a in (0, 90, 180, 270)])
        Ks = intrinsics(64, 48)[None].expand(4, 3, 3).clone()
        self.data = SimpleNamespace(
            cameras=SimpleNamespace(viewmats=vms, Ks=Ks, widths=torch.full((4,), 64), heights=torch.full((4,), 48)),
            points=d["means"][:500].clone(), point_colors=torch.rand(500, 3), train_indices=[0, 1, 2, 3],
            image=lambda i: torch.rand(48, 64, 3),
        )
        self._a = torch.randn(work, work)
        self._iters = iters
        self.snapshots = 0

    def snapshot(self) -> GaussianScene:
        self.snapshots += 1
        p = self.params
        return GaussianScene.from_tensors(p["means"].clone(), p["quats"].clone(), p["scales"].clone(),
                                          p["opacities"].clone(), p["colors"].clone(), activated=True)  # fmt: skip

    def train_step(self) -> dict[str, float]:
        x = self._a
        for _ in range(self._iters):  # dense compute, like a small training step
            x = torch.tanh(x @ self._a) * 0.1
        self.params["means"] += 1e-6
        return {"loss": float(x.abs().mean()), "psnr": 20.0 + self.step * 0.01}

    def run(self, steps: int, observers=()) -> float:
        for ob in observers:
            ob.on_start(self)
        t0, self.cpu0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            while self.paused.is_set():
                time.sleep(0.01)
            m = self.train_step()
            self.step += 1
            for ob in observers:
                ob.on_step(self, self.step, m)
        dt = time.perf_counter() - t0
        self.cpu = time.process_time() - self.cpu0  # all threads, from the first step to the last
        for ob in observers:
            ob.on_end(self)
        return dt


def _wait(cond, timeout=20.0):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_cpu_budget_token_bucket():
    b = CpuBudget(share=0.1, burst_s=0.05)
    assert b.available()
    b.spend(0.25)  # 0.2 s over the burst -> ~2 s of wall time at 10%
    assert 1.5 < b.delay() <= 2.0
    b.unlimited.set()
    assert b.delay() == 0.0


def test_training_viewer_protocol_pause_and_refresh():
    trainer = FakeTrainer(n=5000, work=32)
    tv = TrainingViewer(trainer, port=0, refresh_every=10, verbose=False)
    try:
        tv.on_start(trainer)
        assert tv.url.startswith("http://127.0.0.1:")
        for _ in range(50):
            trainer.step += 1
            tv.on_step(trainer, trainer.step, {"loss": 0.1, "psnr": 25.0})
            time.sleep(0.002)
        assert _wait(lambda: tv.refreshes >= 1)
        assert len(tv.history) == 50
        text = tv.stats_text(list(tv.history))
        assert "step **50**" in text and "5,000 Gaussians" in text
        tv._update_plots(list(tv.history))
        np.testing.assert_array_equal(tv._loss_plot.data[0][-1:], [50.0])
        tv.toggle_pause()
        assert trainer.paused.is_set()
        assert tv._throttle(time.perf_counter()) == 0.0  # paused: the viewer may use the CPU
        tv.toggle_pause()
        assert not trainer.paused.is_set()
        tv.on_end(trainer)
        assert _wait(lambda: tv._pending is None and tv.refreshes >= 2)
        # the dataset's training cameras got frustums, the server renders the current scene
        assert len(tv.viewer._frustums) == 4
        state = CameraState.from_viewmat(orbit_camera(30), intrinsics(80, 60), 80, 60)
        img = tv.viewer.render(state)
        assert img.shape == (60, 80, 3) and img.max() > 0
    finally:
        tv.close()


def _timed_run(trainer, steps, observers):
    """(wall seconds, process CPU seconds) of a training run's steps with these observers
    (the viewer's start-up, a one-off, is not counted)."""
    try:
        wall = trainer.run(steps, observers)
    finally:
        for ob in observers:
            ob.close()
    return wall, trainer.cpu


def _thread_cpu() -> dict[int, float]:
    """CPU seconds used so far by each of this process's threads, by native thread id."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread CPU times need Linux /proc")
def test_training_viewer_overhead_below_10_percent():
    """A fake training loop with the viewer attached: a scene refresh every 20 steps and a
    'browser' asking for a server-side frame every 30 ms.

    Asserted: the CPU time the viewer costs is < 10% of the training loop's own. Both are
    counted per thread over the same steps: the viewer's are its time inside on_step on
    the training thread (snapshots included) plus every other thread of the process
    (server renders, refreshes, GUI, viser's own threads), except the simulated browser.
    Comparing the process's total CPU with and without the viewer is printed, not
    asserted: on a shared 2-core VM two identical runs differ by up to 20%.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the training loop is one thread, so the cost is per core
    try:
        _overhead()
    finally:
        torch.set_num_threads(threads)


def _overhead():
    torch.manual_seed(0)
    # ~60 ms of compute per step: still several times cheaper than a real CPU
    # training step (~300 ms on the built-in scene), so the ratio is conservative
    trainer = FakeTrainer(n=30_000, work=256, iters=96)
    trainer.run(5)  # warm up (and compile the rasterizer if needed)
    with torch.no_grad():
        trainer.snapshot().render(orbit_camera(0), intrinsics(64, 48), 64, 48)
    steps = 200
    # the browser's camera path is built up front: its CPU is the client's, not the viewer's
    K = intrinsics(320, 240)
    orbit = [CameraState.from_viewmat(orbit_camera(3.0 * i), K, 320, 240) for i in range(120)]

    class Browser:
        """Simulated client: orbits the camera, one request per 30 ms, through the viewer's scheduler.
        Also the meter: per-thread CPU from the first step to the last, and the viewer's time
        on the training thread."""

        def __init__(self):
            self.tv = TrainingViewer(trainer, port=0, refresh_every=20, verbose=False)
            self.sched = None
            self._stop = threading.Event()
            self.thread = None
            self.on_step_cpu = 0.0
            self.before = self.after = {}

        def on_start(self, tr):
            self.tv.on_start(tr)
            self.sched = FrameScheduler(lambda s, size: self.tv.viewer.render(s, size), lambda f: None,
                                        throttle=self.tv._throttle)  # fmt: skip
            self.thread = threading.Thread(target=self._orbit, daemon=True)
            self.thread.start()
            self.before = _thread_cpu()

        def _orbit(self):
            i = 0
            while not self._stop.wait(0.03):
                i += 1
                self.sched.request(orbit[i % len(orbit)])

        def on_step(self, tr, step, m):
            c0 = time.thread_time()
            self.tv.on_step(tr, step, m)
            self.on_step_cpu += time.thread_time() - c0
            if step == steps:
                self.after = _thread_cpu()  # before on_end's final refresh, a one-off

        def on_end(self, tr):
            self.tv.on_end(tr)

        def close(self):
            self._stop.set()
            if self.thread:
                self.thread.join()
            if self.sched:
                self.sched.stop()
            self.tv.close()

        def cpu(self) -> tuple[float, float]:
            """(training loop, viewer) CPU seconds over the run."""
            used = {tid: c - self.before.get(tid, 0.0) for tid, c in self.after.items()}
            main = used.pop(threading.main_thread().native_id)
            used.pop(self.thread.native_id, None)  # the simulated browser
            return main - self.on_step_cpu, sum(used.values()) + self.on_step_cpu

    trainer.step = 0
    base = _timed_run(trainer, steps, [])
    trainer.step = 0
    b = Browser()
    withv = _timed_run(trainer, steps, [b])
    train_cpu, viewer_cpu = b.cpu()
    share = viewer_cpu / train_cpu
    print(f"\nper {steps} steps: viewer {viewer_cpu:.2f} s CPU ({100 * share:.1f}% of training's {train_cpu:.2f} s; "
          f"{b.tv.snapshot_seconds:.2f} s snapshots, {b.sched.frames} frames, {b.tv.refreshes} refreshes); "
          f"process CPU {base[1]:.2f} s -> {withv[1]:.2f} s, wall {base[0]:.2f} s -> {withv[0]:.2f} s")  # fmt: skip
    # a watching browser must not starve scene refreshes (starved: 1-2 per run)
    assert b.tv.refreshes >= 4, f"only {b.tv.refreshes} scene refreshes in {steps} steps"
    assert b.sched.frames >= 2, "the simulated browser got no frames"
    assert share < 0.10, f"the viewer cost {100 * share:.1f}% of the training loop's CPU (limit 10%)"
