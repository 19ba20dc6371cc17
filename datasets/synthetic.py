"""Procedural synthetic scenes rendered with Open3D's CPU ray casting.

`make_scene` writes a Blender / NeRF-synthetic folder (transforms_train.json,
transforms_test.json, RGBA PNGs) with exact cameras: a few colored, textured
shapes on a checkered ground plane, so a trained splat is recognizable and
SfM finds plenty of features. It is splat's built-in default scene (no
download). `make_dynamic_scene` moves and deforms the objects over T frames
seen by K fixed cameras and writes a multi-view video dataset (N3DV layout)
with ground truth.

World frame: z up, objects on the ground plane z = 0 around the origin.
Textures are solid (3D) procedural functions of the hit point, so they need
no UV maps and stay consistent across views.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from splat.atomic import atomic_write

from .cache import write_png

LIGHT_DIR = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])


# --- solid textures -----------------------------------------------------------
def _hash3(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) per integer lattice point."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float64) / 65536.0


def value_noise(p: np.ndarray, freq: float, seed: int = 0, octaves: int = 3) -> np.ndarray:
    """Smooth fractal noise in [0, 1] at points p [M, 3] (trilinear lattice interpolation)."""
    total, amp, norm = np.zeros(len(p)), 1.0, 0.0
    for o in range(octaves):
        q = p * freq * (2**o)
        i = np.floor(q).astype(np.int64)
        f = q - i
        f = f * f * (3 - 2 * f)  # smoothstep weights
        acc = np.zeros(len(p))
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    w = (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1]) * (f[:, 2] if dz else 1 - f[:, 2])
                    acc += w * _hash3(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed + o)
        total += amp * acc
        norm += amp
        amp *= 0.5
    return total / norm


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    return np.asarray(a)[None] * (1 - t[:, None]) + np.asarray(b)[None] * t[:, None]


def _ground(p):  # checkerboard of warm tones with speckle
    check = ((np.floor(p[:, 0] * 2) + np.floor(p[:, 1] * 2)) % 2).astype(np.float64)
    base = _mix([0.82, 0.78, 0.68], [0.42, 0.36, 0.30], check)
    return base * (0.65 + 0.45 * value_noise(p, 6.0, 1))[:, None]


def _stripes(p):  # red / yellow bands
    t = 0.5 + 0.5 * np.sin(p[:, 2] * 18 + 3 * value_noise(p, 3.0, 2))
    return _mix([0.85, 0.15, 0.1], [0.95, 0.8, 0.2], t) * (0.75 + 0.35 * value_noise(p, 12.0, 3))[:, None]


def _tiles(p):  # blue and white small checks
    c = ((np.floor(p[:, 0] * 6) + np.floor(p[:, 1] * 6) + np.floor(p[:, 2] * 6)) % 2).astype(np.float64)
    return _mix([0.1, 0.25, 0.8], [0.92, 0.92, 0.95], c) * (0.8 + 0.3 * value_noise(p, 10.0, 4))[:, None]


def _moss(p):  # green speckled
    n = value_noise(p, 8.0, 5, octaves=4)
    return _mix([0.05, 0.35, 0.1], [0.6, 0.85, 0.3], n)


def _rings(p):  # orange rings with noise
    r = np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2)
    t = 0.5 + 0.5 * np.sin(r * 40 + 4 * value_noise(p, 4.0, 6))
    return _mix([0.95, 0.5, 0.1], [0.45, 0.15, 0.05], t)


def _marble(p):  # purple marble
    t = 0.5 + 0.5 * np.sin(p[:, 0] * 6 + 8 * value_noise(p, 3.0, 7, octaves=4))
    return _mix([0.45, 0.2, 0.65], [0.9, 0.85, 0.95], t)


@dataclass
class SceneObject:
    name: str
    mesh: object  # open3d.geometry.TriangleMesh, in world coordinates
    texture: Callable[[np.ndarray], np.ndarray]  # world points [M, 3] -> rgb [M, 3]


def build_objects(seed: int = 0, t: float = 0.0, dynamic: bool = False) -> list[SceneObject]:
    """The object set at time t in [0, 1] (static scene: t is ignored)."""
    import open3d as o3d

    G = o3d.geometry.TriangleMesh
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-0.15, 0.15, size=(5, 2)) if seed else np.zeros((5, 2))

    def place(mesh, xyz, rz=0.0):
        R = mesh.get_rotation_matrix_from_xyz((0.0, 0.0, rz))
        mesh.rotate(R, center=(0, 0, 0))
        mesh.translate(xyz)
        mesh.compute_triangle_normals()
        return mesh

    ground = G.create_box(8.0, 8.0, 0.1).translate((-4.0, -4.0, -0.1))
    ground.compute_triangle_normals()
    sphere = G.create_sphere(0.45, resolution=40)
    box = G.create_box(0.7, 0.7, 0.7).translate((-0.35, -0.35, 0.0))
    torus = G.create_torus(torus_radius=0.4, tube_radius=0.15, radial_resolution=40, tubular_resolution=24)
    cyl = G.create_cylinder(radius=0.25, height=0.9, resolution=40).translate((0, 0, 0.45))
    cone = G.create_cone(radius=0.3, height=0.7, resolution=40)

    # dynamic variant: the sphere rolls around, the box spins, the torus rises and
    # tilts, and the cylinder deforms (a travelling bulge on its vertices)
    a = 2 * math.pi * t if dynamic else 0.0
    if dynamic:
        v = np.asarray(cyl.vertices)
        r = 1 + 0.35 * np.sin(3 * v[:, 2] - a) * (v[:, 2] > 0.05) * (v[:, 2] < 0.85)
        v[:, :2] *= r[:, None]
        cyl.vertices = o3d.utility.Vector3dVector(v)
        torus.rotate(torus.get_rotation_matrix_from_xyz((0.6 * math.sin(a), 0.0, 0.0)), center=(0, 0, 0))
    objs = [
        SceneObject("ground", ground, _ground),
        SceneObject("sphere", place(sphere, (0.9 * math.cos(a) + jitter[0, 0], 0.9 * math.sin(a) + jitter[0, 1], 0.45)), _stripes),
        SceneObject("box", place(box, (-0.9 + jitter[1, 0], -0.3 + jitter[1, 1], 0.0), rz=0.4 + a), _tiles),
        SceneObject("torus", place(torus, (0.2 + jitter[2, 0], -1.0 + jitter[2, 1], 0.15 + (0.3 * (1 - math.cos(a)) if dynamic else 0))), _moss),
        SceneObject("cylinder", place(cyl, (-0.4 + jitter[3, 0], 0.9 + jitter[3, 1], 0.0)), _rings),
        SceneObject("cone", place(cone, (0.1 + jitter[4, 0], 0.2 + jitter[4, 1], 0.0)), _marble),
    ]
    return objs


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world [4, 4] at `eye` looking at `target` (x right, y down, z forward)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
    return m


def orbit_cameras(n: int, seed: int, radius=(4.0, 5.0), elevation_deg=(18.0, 50.0), phase: float = 0.0,
                  arc_deg: float = 360.0) -> np.ndarray:  # fmt: skip
    """n OpenCV camera-to-world [n, 4, 4] around the origin, azimuths spread evenly over `arc_deg`."""
    rng = np.random.default_rng(seed)
    out = []
    step = math.radians(arc_deg) / (n if arc_deg >= 360 else max(n - 1, 1))
    for k in range(n):
        az = step * (k + phase) + rng.uniform(-0.1, 0.1) * min(1.0, step)
        el = math.radians(rng.uniform(*elevation_deg))
        r = rng.uniform(*radius)
        eye = np.array([r * math.cos(el) * math.cos(az), r * math.cos(el) * math.sin(az), r * math.sin(el)])
        target = np.array([0.0, 0.0, 0.35]) + rng.uniform(-0.15, 0.15, 3) * [1, 1, 0.5]
        out.append(look_at_c2w(eye, target))
    return np.stack(out) if out else np.zeros((0, 4, 4))


class Renderer:
    """Ray-casts an object set with Lambert shading and a cast shadow."""

    def __init__(self, objects: list[SceneObject]):
        import open3d as o3d

        self.objects = objects
        self.scene = o3d.t.geometry.RaycastingScene()
        self.ids = [self.scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(o.mesh)) for o in objects]

    def render(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int, supersample: int = 2) -> np.ndarray:
        """uint8 RGBA [H, W, 4] seen by an OpenCV camera (c2w [4, 4], K [3, 3])."""
        import open3d as o3d

        s = supersample
        W, H = width * s, height * s
        # rays through pixel centers (j + 0.5, i + 0.5) of the supersampled grid
        u = (np.arange(W) + 0.5) / s
        v = (np.arange(H) + 0.5) / s
        uu, vv = np.meshgrid(u, v)  # [H, W]
        d = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], -1)
        d = d.reshape(-1, 3) @ c2w[:3, :3].T  # [M, 3] world directions
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        o = np.broadcast_to(c2w[:3, 3], d.shape)
        rays = o3d.core.Tensor(np.concatenate([o, d], 1).astype(np.float32))
        hit = self.scene.cast_rays(rays)
        t = hit["t_hit"].numpy()  # [M]
        gid = hit["geometry_ids"].numpy()  # [M]
        nrm = hit["primitive_normals"].numpy().astype(np.float64)  # [M, 3]
        valid = np.isfinite(t)
        rgb = np.zeros((len(t), 3))
        p = o[valid] + d[valid] * t[valid, None]
        n = nrm[valid]
        n *= -np.sign(np.sum(n * d[valid], axis=1, keepdims=True) + 1e-12)  # face the camera
        # shadow rays toward the light, started just off the surface
        sh_o = p + n * 1e-3
        sh = o3d.core.Tensor(np.concatenate([sh_o, np.broadcast_to(LIGHT_DIR, sh_o.shape)], 1).astype(np.float32))
        lit = ~np.isfinite(self.scene.cast_rays(sh)["t_hit"].numpy())
        diffuse = np.clip(n @ LIGHT_DIR, 0, 1) * lit
        color = np.zeros((len(p), 3))
        g = gid[valid]
        for obj, oid in zip(self.objects, self.ids):
            sel = g == oid
            if sel.any():
                color[sel] = obj.texture(p[sel])
        rgb[valid] = np.clip(color * (0.35 + 0.75 * diffuse)[:, None], 0, 1)
        rgba = np.concatenate([rgb, valid[:, None].astype(np.float64)], 1).reshape(H, W, 4)
        if s > 1:  # box filter = area average, i.e. anti-aliasing
            rgba = rgba.reshape(height, s, width, s, 4).mean(axis=(1, 3))
        return np.round(rgba * 255).astype(np.uint8)


def _intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    f = 0.5 * width / math.tan(0.5 * math.radians(fov_x_deg))
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1)


def make_scene(
    out_dir: str | Path,
    n_train: int = 60,
    n_test: int = 10,
    width: int = 320,
    height: int | None = None,
    seed: int = 0,
    fov_x_deg: float = 50.0,
    transparent: bool = True,
    supersample: int = 1,
    arc_deg: float = 360.0,
    elevation_deg: tuple[float, float] = (18.0, 50.0),
) -> Path:
    """Render the built-in scene into a Blender-format folder; returns its path.

    transforms_train.json / transforms_test.json hold `camera_angle_x` and
    OpenGL camera-to-world matrices; images are RGBA PNGs (alpha 0 off the
    ground plane unless `transparent` is False, which paints a sky gradient).
    About 0.1 s per 320x320 view; `supersample=2` anti-aliases at 4x the cost.
    Cameras orbit the objects, spread over `arc_deg` degrees of azimuth.
    """
    out = Path(out_dir)
    height = height or width
    K = _intrinsics(width, height, fov_x_deg)
    renderer = Renderer(build_objects(seed))
    splits = {"train": orbit_cameras(n_train, seed, arc_deg=arc_deg, elevation_deg=elevation_deg),
              "test": orbit_cameras(n_test, seed + 1000, phase=0.5, arc_deg=arc_deg, elevation_deg=elevation_deg)}
    for split, c2ws in splits.items():
        frames = []
        for k, c2w in enumerate(c2ws):
            img = renderer.render(c2w, K, width, height, supersample)
            if not transparent:
                img = _sky(img, height)
            write_png(out / split / f"r_{k}.png", img)
            gl = c2w.copy()
            gl[:3, 1:3] *= -1  # OpenCV -> OpenGL camera axes
            frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": gl.tolist()})
        _write_json(out / f"transforms_{split}.json", {"camera_angle_x": math.radians(fov_x_deg), "frames": frames})
    return out


def _sky(img: np.ndarray, height: int) -> np.ndarray:
    """Composite RGBA on a vertical sky gradient (opaque result)."""
    t = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array([0.55, 0.7, 0.95]) * (1 - t) + np.array([0.9, 0.93, 1.0]) * t) * 255
    a = img[..., 3:].astype(np.float64) / 255
    rgb = img[..., :3] * a + sky * (1 - a)
    return np.concatenate([np.round(rgb), np.full_like(a, 255)], -1).astype(np.uint8)


def make_dynamic_scene(
    out_dir: str | Path,
    n_frames: int = 30,
    n_cameras: int = 4,
    width: int = 256,
    height: int | None = None,
    seed: int = 0,
    fps: int = 30,
    fov_x_deg: float = 50.0,
    video: bool = True,
    supersample: int = 1,
) -> Path:
    """Render T frames seen by K fixed cameras into a multi-view video dataset.

    Layout (N3DV): ``cam00.mp4 ... cam{K-1}.mp4`` + ``poses_bounds.npy``
    (with `video=False`: frame folders ``cam00/000000.png ...``), plus
    ``ground_truth.json`` holding the exact cameras (internal convention:
    world-to-camera OpenCV viewmats, Ks) and every object's vertices' mean
    position per frame. Images are opaque (sky gradient).
    """
    from .llff import write_poses_bounds

    out = Path(out_dir)
    height = height or width
    K = _intrinsics(width, height, fov_x_deg)
    c2ws = orbit_cameras(n_cameras, seed, radius=(4.5, 4.5), elevation_deg=(25, 35))
    frames = {c: [] for c in range(n_cameras)}
    track: list[dict[str, list[float]]] = []
    for t in range(n_frames):
        objs = build_objects(seed, t / max(n_frames, 1), dynamic=True)
        track.append({o.name: np.asarray(o.mesh.vertices).mean(0).tolist() for o in objs})
        renderer = Renderer(objs)
        for c in range(n_cameras):
            img = _sky(renderer.render(c2ws[c], K, width, height, supersample), height)[..., :3]
            if video:
                frames[c].append(img)
            else:
                write_png(out / f"cam{c:02d}" / f"{t:06d}.png", img)
    if video:
        from .video import write_video

        for c in range(n_cameras):
            write_video(out / f"cam{c:02d}.mp4", frames[c], fps)
    write_poses_bounds(out / "poses_bounds.npy", c2ws, K, width, height, near=1.0, far=12.0)
    viewmats = np.linalg.inv(c2ws)
    _write_json(out / "ground_truth.json", {
        "convention": "viewmats: world-to-camera OpenCV; Ks: pinhole, pixel centers at +0.5",
        "fps": fps, "n_frames": n_frames, "width": width, "height": height,
        "viewmats": viewmats.tolist(), "Ks": [K.tolist()] * n_cameras, "object_centers": track,
    })  # fmt: skip
    return out


BUILTIN_NAME = "synthetic"


def builtin_scene() -> Path:
    """The built-in default scene (60 train / 10 test views at 320x320), rendered
    once into the cache (``$SPLAT_CACHE/scenes/synthetic``) and reused."""
    import shutil
    import tempfile

    from .cache import cache_root

    out = cache_root() / "scenes" / BUILTIN_NAME
    if (out / "transforms_test.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # render into a temporary sibling, then rename: an interrupted run leaves no half scene
    tmp = Path(tempfile.mkdtemp(prefix=f".{BUILTIN_NAME}.", dir=out.parent))
    try:
        make_scene(tmp)
        if not (out / "transforms_test.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
