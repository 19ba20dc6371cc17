"""Camera paths (viewer -> `splat render --path`) and `splat view` errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from splat.errors import SplatError
from splat.procedural import intrinsics, orbit_camera
from splat.viewer.camera import CameraState, fov_to_K
from splat.viewer.path import CameraPath, Keyframe, load_camera_path


def _path(tmp_path, **kw):
    kfs = [Keyframe(orbit_camera(a).double().numpy(), math.radians(50.0)) for a in (0.0, 90.0, 180.0)]
    p = CameraPath(kfs, width=320, height=200, fps=10.0, seconds=3.0, **kw)
    out = tmp_path / "path.json"
    p.save(out)
    return out, kfs


def test_camera_path_round_trip_and_interpolation(tmp_path):
    out, kfs = _path(tmp_path, interpolation="linear")
    d = json.loads(out.read_text())
    assert d["format"] == "splat-camera-path" and d["version"] == 1 and len(d["keyframes"]) == 3
    viewmats, Ks, w, h = load_camera_path(out)
    assert (w, h) == (320, 200) and viewmats.shape == (30, 4, 4) and Ks.shape == (30, 3, 3)
    torch.testing.assert_close(viewmats[0], orbit_camera(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(viewmats[-1], orbit_camera(180.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(Ks[0], fov_to_K(math.radians(50.0), 320, 200))
    R = viewmats[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(30, 3, 3), atol=1e-5, rtol=0)
    # frames move smoothly: no jumps larger than a few times the mean step
    centers = torch.linalg.inv(viewmats)[:, :3, 3]
    steps = (centers[1:] - centers[:-1]).norm(dim=-1)
    assert steps.max() < 3 * steps.mean()


def test_camera_path_smooth_loop_and_none(tmp_path):
    out, _ = _path(tmp_path, interpolation="smooth", loop=True)
    viewmats, _, _, _ = load_camera_path(out)
    assert viewmats.shape[0] == 30
    out2, kfs = _path(tmp_path, interpolation="none")
    vms, _, _, _ = load_camera_path(out2)
    assert vms.shape[0] == 3
    torch.testing.assert_close(vms[1], orbit_camera(90.0), atol=1e-5, rtol=0)


def test_keyframe_from_viewer_state_replays_the_same_view(tmp_path):
    vm, K = orbit_camera(40.0), intrinsics(320, 200, 70.0)
    state = CameraState.from_viewmat(vm, K, 640, 400)  # canvas twice the size: same fov
    p = CameraPath([Keyframe(state.viewmat().double().numpy(), state.fov)], width=320, height=200)
    p.save(tmp_path / "one.json")
    vms, Ks, w, h = load_camera_path(tmp_path / "one.json")
    torch.testing.assert_close(vms[0], vm, atol=1e-5, rtol=0)
    torch.testing.assert_close(Ks[0], fov_to_K(state.fov, 320, 200), atol=1e-4, rtol=0)


@pytest.mark.parametrize("content,msg", [
    ("{", "not valid JSON"),
    ('{"format": "other"}', "not a camera path"),
    ('{"format": "splat-camera-path", "version": 1, "width": 10, "height": 10, "keyframes": []}', "no keyframes"),
    ('{"format": "splat-camera-path", "version": 1, "width": 10, "height": 10, '
     '"keyframes": [{"viewmat": [[1]], "fov_y": 1}]}', "4x4"),
])  # fmt: skip
def test_camera_path_errors(tmp_path, content, msg):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(SplatError, match=msg):
        load_camera_path(f)
    with pytest.raises(SplatError, match="cannot read"):
        load_camera_path(tmp_path / "missing.json")


def test_splat_view_unreadable_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply at all")
    for target in (bad, tmp_path / "missing.ply"):
        r = subprocess.run([sys.executable, "-c", "import sys; from splat.cli import main; sys.argv[1:] = "
                            f"['view', {str(target)!r}]; main()"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("splat: error:") and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_splat_view_serves_and_falls_back_to_a_free_port(tmp_path):
    import socket

    from splat.procedural import surface_scene
    from splat.scene import GaussianScene

    d = surface_scene(500)
    path = tmp_path / "s.ply"
    GaussianScene.from_tensors(d["means"], d["quats"], d["scales"], d["opacities"], d["colors"],
                               activated=True).save(path)  # fmt: skip
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-c", "import sys; from splat.cli import main; sys.argv[1:] = "
                            f"['view', {str(path)!r}, '--port', '{port}', '--seconds', '1']; main()"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"was busy" in r.stdout and "http://127.0.0.1:" in r.stdout
    url_port = int(r.stdout.split("http://127.0.0.1:")[1].split()[0])
    assert url_port != port
