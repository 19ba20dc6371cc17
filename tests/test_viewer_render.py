"""Server-side render path: viser camera state -> image equals scene.render for that camera."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch

from splat.procedural import intrinsics, look_at, orbit_camera, surface_scene
from splat.scene import GaussianScene
from splat.viewer.camera import (CameraState, fov_to_K, matrix_to_quat, quat_to_matrix, viewmat_to_viser,
                                 viser_to_viewmat)  # fmt: skip
from splat.viewer.render import (AdaptiveResolution, FrameScheduler, PreparedScene, colorize_depth,
                                 render_view)  # fmt: skip


@pytest.fixture(scope="module")
def scene():
    d = surface_scene(4000, seed=1, sh_degree=2)
    return GaussianScene.from_tensors(d["means"], d["quats"], d["scales"], d["opacities"], d["colors"],
                                      activated=True)  # fmt: skip


def test_quaternion_round_trip():
    g = torch.Generator().manual_seed(0)
    for q in torch.randn(50, 4, generator=g, dtype=torch.float64):
        q = (q / q.norm()).numpy()
        R = quat_to_matrix(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        q2 = matrix_to_quat(R)
        np.testing.assert_allclose(q2 * np.sign(q[0]), q, atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 70.0, 200.0])
def test_viewmat_viser_round_trip(angle):
    vm = orbit_camera(angle)
    wxyz, pos = viewmat_to_viser(vm)
    torch.testing.assert_close(viser_to_viewmat(wxyz, pos), vm, atol=1e-5, rtol=0)
    # position is the camera center: the viewmat maps it to the origin
    np.testing.assert_allclose((vm.double() @ torch.tensor([*pos, 1.0]).double())[:3], 0, atol=1e-5)


def test_viser_look_at_convention():
    """viser's own camera math (CameraHandle._update_wxyz, its look_at / up_direction to
    wxyz) through our conversion: the look-at point lands at the image center and the
    up direction points up in the image."""
    from viser._viser import CameraHandle, _CameraHandleState

    position, target, up = np.array([1.0, -2.0, -3.0]), np.array([0.2, 0.1, 0.3]), np.array([0.0, -1.0, 0.0])
    handle = CameraHandle.__new__(CameraHandle)
    handle._state = _CameraHandleState(None, np.array([1.0, 0, 0, 0]), position, fov=1.0, image_height=480,
                                       image_width=640, near=0.01, far=100.0, min_orbit_distance=0.01,
                                       max_orbit_distance=1e4, look_at=target, up_direction=up,
                                       update_timestamp=1.0, camera_cb=[])  # fmt: skip
    handle._update_wxyz()
    state = CameraState.from_handle(handle)
    vm, K = state.viewmat().double(), state.K().double()

    def project(p):
        pc = vm[:3, :3] @ torch.tensor(p).double() + vm[:3, 3]
        assert pc[2] > 0, "point behind the camera"
        uv = K @ (pc / pc[2])
        return uv[:2].numpy()

    np.testing.assert_allclose(project(target), [320.0, 240.0], atol=1e-6)
    above = project(target + 0.1 * up)
    assert above[1] < 240.0 - 1.0 and abs(above[0] - 320.0) < 1e-6  # up is up (smaller row)
    # the vertical field of view: a point at the top edge
    dist = np.linalg.norm(target - position)
    cam_up = -quat_to_matrix(state.wxyz)[:, 1]  # OpenCV: camera y points down
    top = project(target + cam_up * dist * math.tan(0.5))  # fov 1.0 rad -> half angle 0.5
    np.testing.assert_allclose(top, [320.0, 0.0], atol=1e-4)
    # look_at for a look_at()-built viewmat agrees with ours
    ref = look_at(tuple(position), tuple(target), tuple(up))
    torch.testing.assert_close(vm.float(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("angle,size", [(20.0, (160, 120)), (135.0, (200, 90)), (300.0, (96, 128))])
def test_render_view_matches_scene_render(scene, angle, size):
    w, h = size
    vm = orbit_camera(angle)
    K = fov_to_K(math.radians(50.0), w, h)
    state = CameraState.from_viewmat(vm, K, w, h)
    torch.testing.assert_close(state.K(), K, atol=1e-4, rtol=1e-6)
    prep = PreparedScene.from_scene(scene)
    bg = (0.1, 0.2, 0.3)
    got = render_view(prep, state, "RGB", background=bg)
    with torch.no_grad():
        ref, alphas, _ = scene.render(vm, K, w, h, backgrounds=torch.tensor([bg]))
    ref = ref[0].clamp(0, 1)
    assert got.shape == (h, w, 3)
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=0)
    assert (alphas > 0.5).float().mean() > 0.05  # the scene is in view
    # Alpha and depth modes see the same geometry
    alpha = render_view(prep, state, "Alpha")[..., 0]
    torch.testing.assert_close(alpha, alphas[0, ..., 0], atol=2e-5, rtol=0)
    with torch.no_grad():
        ed, a2, _ = scene.render(vm, K, w, h, render_mode="ED")
    torch.testing.assert_close(render_view(prep, state, "Expected depth", bg),
                               colorize_depth(ed[0, ..., 0], a2[0, ..., 0], bg), atol=2e-4, rtol=0)


def test_reduced_resolution_is_the_same_view(scene):
    vm = orbit_camera(45.0)
    state = CameraState.from_viewmat(vm, intrinsics(320, 240, 60.0), 320, 240)
    prep = PreparedScene.from_scene(scene)
    full = render_view(prep, state, "RGB")
    half = render_view(prep, state, "RGB", size=state.scaled_size(0.5))
    assert half.shape == (120, 160, 3)
    down = torch.nn.functional.avg_pool2d(full.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert (down - half).abs().mean() < 0.03


def test_adaptive_resolution_model():
    c = AdaptiveResolution(target_fps=10)
    for s in (1.0, 0.5, 0.25, 0.7):
        px = 640 * 480 * s * s
        c.record(int(px), 0.02 + 0.3e-6 * px)  # 20 ms fixed + 0.3 us per pixel
    a, b = c.model()
    assert abs(a - 0.02) < 1e-3 and abs(b - 0.3e-6) < 1e-8
    s = c.moving_scale(640, 480)
    assert abs(c.predict(int(640 * 480 * s * s)) - 0.1) < 2e-3
    c2 = AdaptiveResolution(target_fps=10)
    c2.record(640 * 480, 0.01)
    assert c2.moving_scale(640, 480) == 1.0


def test_scheduler_drops_stale_requests_and_settles_full():
    rendered, sent = [], []
    lock = threading.Lock()

    def render(state, size):
        time.sleep(0.03)
        with lock:
            rendered.append((state.position[0], size))
        return np.zeros((size[1], size[0], 3), np.uint8)

    ctrl = AdaptiveResolution(target_fps=100)  # forces low-res frames while moving
    sched = FrameScheduler(render, sent.append, ctrl, settle_s=0.1)
    try:
        for i in range(40):  # a drag: 40 updates in ~0.2 s
            sched.request(CameraState((1.0, 0, 0, 0), (float(i), 0.0, 0.0), 1.0, 400, 300))
            time.sleep(0.005)
        assert sched.wait_idle(5.0)
    finally:
        sched.stop()
    assert len(rendered) < 20, "every request was rendered: stale ones must be dropped"
    assert sched.dropped >= 20
    assert rendered[-1] == (39.0, (400, 300)), "the last frame is the newest camera, full resolution"
    assert any(size != (400, 300) for _, size in rendered[:-1]), "no reduced frame while moving"
    assert sent[-1].full and sent[-1].seq == 40


def test_scheduler_sends_nothing_once_stopped():
    """A browser that leaves mid-render: viser closes its connection, then the
    disconnect callback stops the client's scheduler. The frame in flight must
    not be sent to the dead connection (viser warns: "Queued a ... on a closed
    connection")."""
    started, sent = threading.Event(), []

    def render(state, size):
        started.set()
        time.sleep(0.2)
        return np.zeros((size[1], size[0], 3), np.uint8)

    sched = FrameScheduler(render, sent.append)
    sched.request(CameraState((1.0, 0, 0, 0), (0.0, 0.0, 0.0), 1.0, 40, 30), full=True)
    assert started.wait(5.0)
    sched.stop()  # returns once the thread is done with the frame in flight
    assert sent == [] and sched.frames == 0


def test_server_stop_ends_its_status_updates_first(scene):
    """The status text is a GUI element: written after the server stopped, it
    only draws viser's "Queued a GuiUpdateMessage on a closed connection"
    warning. stop() must end the status thread before the server."""
    import types
    import warnings

    from splat.viewer.render import Frame
    from splat.viewer.server import ViewerServer

    v = ViewerServer(scene, host="127.0.0.1", port=0, verbose=False)
    time.sleep(0.7)  # the status loop has shown "waiting for a browser"
    # a client's frame counters: the loop's next pass has new text to show
    frame = Frame(np.zeros((30, 40, 3), np.uint8), None, 1, True, 0.01)
    v._schedulers[7] = types.SimpleNamespace(last_frame=frame, frames=1, dropped=0, last_error=None, stop=lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v.stop()
        time.sleep(0.7)  # past the loop's next pass
    assert not v._status_thread.is_alive()
    assert [str(w.message) for w in caught if "closed connection" in str(w.message)] == []


def test_server_sends_no_frame_to_a_client_viser_no_longer_lists(scene):
    """Between viser closing a connection and our disconnect callback stopping
    its scheduler, a finished frame must not go to the closed connection."""
    import types

    from splat.viewer.render import Frame
    from splat.viewer.server import ViewerServer

    v = ViewerServer(scene, host="127.0.0.1", port=0, verbose=False)
    try:
        sent = []
        gone = types.SimpleNamespace(client_id=12345, scene=types.SimpleNamespace(
            set_background_image=lambda image, **kw: sent.append(image)))  # fmt: skip
        v._send(gone, Frame(np.zeros((30, 40, 3), np.uint8), None, 1, True, 0.01))
        assert sent == []
    finally:
        v.stop()
