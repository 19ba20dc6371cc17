"""Seeded, composable image degradations written to a copy of a dataset.

For the degradation-robust trainers' benchmarks: take a clean scene, write a
corrupted copy, train on it, evaluate against the clean test views.

    from splat.datasets import degrade as dg
    dg.degrade("lego", "lego_noisy", [dg.GaussianNoise(0.05), dg.Jpeg(40)], seed=0)

Every image is corrupted with its own generator seeded by (seed, image
index), so results are reproducible and independent of processing order.
`degradations.json` in the copy records the operations, their parameters and
what was sampled per image. Alpha channels are kept (occluders make their
pixels opaque). Operations act on float32 RGB [H, W, 3] in [0, 1].
"""

from __future__ import annotations

import io
import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageFilter

from splat.atomic import atomic_write
from splat.errors import SplatError

# renderer(viewmat [4, 4] world-to-camera OpenCV, K [3, 3], width, height) -> float RGB [H, W, 3]
Renderer = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


@dataclass
class Context:
    """What an operation may need besides the pixels."""

    rng: np.random.Generator
    viewmat: np.ndarray  # [4, 4] original frame
    K: np.ndarray  # [3, 3]
    renderer: Renderer | None = None
    record: dict[str, Any] = field(default_factory=dict)  # per-image sampled values for the manifest


class Degradation:
    name = "degradation"

    def __call__(self, img: np.ndarray, ctx: Context) -> np.ndarray:  # [H, W, 3] -> [H', W', 3]
        raise NotImplementedError

    def params(self) -> dict:
        return {"op": self.name, **asdict(self)}


@dataclass
class GaussianNoise(Degradation):
    sigma: float = 0.03  # standard deviation in [0, 1] units
    name = "gaussian_noise"

    def __call__(self, img, ctx):
        return img + ctx.rng.normal(0.0, self.sigma, img.shape)


@dataclass
class PoissonNoise(Degradation):
    peak: float = 100.0  # photons at white: lower is noisier
    name = "poisson_noise"

    def __call__(self, img, ctx):
        return ctx.rng.poisson(np.clip(img, 0, 1) * self.peak) / self.peak


@dataclass
class MotionBlur(Degradation):
    """Camera shake during the exposure.

    With a renderer: the average of `samples` renders along a short SE(3) path
    (rotation up to `max_rotation_deg`, translation up to `max_translation`
    scene units, centred on the true pose). Without: a linear kernel of
    `length_px` pixels at a random angle.
    """

    length_px: float = 9.0
    max_rotation_deg: float = 1.0
    max_translation: float = 0.02
    samples: int = 9
    name = "motion_blur"

    def __call__(self, img, ctx):
        if ctx.renderer is not None:
            return self._render_path(img, ctx)
        angle = ctx.rng.uniform(0, 180)
        ctx.record["motion_angle_deg"] = float(angle)
        n = max(1, int(round(self.length_px)))
        k = np.zeros((n, n))
        c = (n - 1) / 2
        for s in np.linspace(-c, c, 4 * n):
            x, y = c + s * math.cos(math.radians(angle)), c + s * math.sin(math.radians(angle))
            k[int(round(y)), int(round(x))] = 1
        return _convolve(img, k / k.sum())

    def _render_path(self, img, ctx):
        axis = ctx.rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        rot = math.radians(self.max_rotation_deg) * ctx.rng.uniform(0.5, 1.0)
        shift = ctx.rng.normal(size=3)
        shift *= self.max_translation * ctx.rng.uniform(0.5, 1.0) / np.linalg.norm(shift)
        ctx.record.update(path_axis=axis.tolist(), path_rotation_deg=math.degrees(rot), path_shift=shift.tolist())
        h, w = img.shape[:2]
        acc = np.zeros_like(img)
        for s in np.linspace(-0.5, 0.5, self.samples):
            delta = np.eye(4)
            delta[:3, :3] = _axis_angle(axis, s * rot)
            delta[:3, 3] = s * shift
            acc += np.asarray(ctx.renderer(delta @ ctx.viewmat, ctx.K, w, h), dtype=np.float64)[..., :3]
        return acc / self.samples


@dataclass
class Defocus(Degradation):
    radius_px: float = 3.0  # disk kernel radius
    name = "defocus"

    def __call__(self, img, ctx):
        r = max(1, int(math.ceil(self.radius_px)))
        y, x = np.mgrid[-r : r + 1, -r : r + 1]
        k = (x**2 + y**2 <= self.radius_px**2).astype(np.float64)
        return _convolve(img, k / k.sum())


@dataclass
class Downsample(Degradation):
    """Area downsampling by 2, 4 or 8; the copy's cameras are rescaled to match."""

    factor: int = 2
    name = "downsample"

    def __post_init__(self):
        if self.factor not in (2, 4, 8):
            raise SplatError(f"downsample factor must be 2, 4 or 8, got {self.factor}")

    def __call__(self, img, ctx):
        h, w = img.shape[:2]
        out = (w // self.factor, h // self.factor)
        return np.stack([np.asarray(Image.fromarray(img[..., c].astype(np.float32)).resize(out, Image.Resampling.BOX))
                         for c in range(img.shape[-1])], -1)  # fmt: skip


@dataclass
class Jpeg(Degradation):
    quality: int = 30
    name = "jpeg"

    def __call__(self, img, ctx):
        buf = io.BytesIO()
        Image.fromarray(_to_u8(img)).save(buf, format="JPEG", quality=int(self.quality))
        return np.asarray(Image.open(buf)).astype(np.float64) / 255


@dataclass
class Photometric(Degradation):
    """Per-image exposure (stops), white balance (per-channel gain) and gamma."""

    exposure_stops: float = 0.7  # uniform in [-e, e]
    white_balance: float = 0.15  # per-channel gain in [1 - wb, 1 + wb]
    gamma: float = 0.2  # gamma in [1 - g, 1 + g]
    name = "photometric"

    def __call__(self, img, ctx):
        ev = ctx.rng.uniform(-self.exposure_stops, self.exposure_stops)
        wb = ctx.rng.uniform(1 - self.white_balance, 1 + self.white_balance, 3)
        g = ctx.rng.uniform(1 - self.gamma, 1 + self.gamma)
        ctx.record.update(exposure_stops=float(ev), white_balance=wb.tolist(), gamma=float(g))
        return np.clip(img * (2.0**ev) * wb, 0, 1) ** g


@dataclass
class Occluders(Degradation):
    """Transient distractors: random solid, textured rectangles and ellipses."""

    count: int = 2
    max_size: float = 0.3  # fraction of the image side
    probability: float = 1.0  # chance that an image gets any
    name = "occluders"

    def __call__(self, img, ctx):
        out = img.copy()
        h, w = img.shape[:2]
        boxes = []
        if ctx.rng.uniform() < self.probability:
            yy, xx = np.mgrid[0:h, 0:w]
            for _ in range(self.count):
                sw, sh = (ctx.rng.uniform(0.1, 1.0, 2) * self.max_size * [w, h]).astype(int) + 2
                x0, y0 = int(ctx.rng.integers(0, max(1, w - sw))), int(ctx.rng.integers(0, max(1, h - sh)))
                color = ctx.rng.uniform(0, 1, 3)
                if ctx.rng.uniform() < 0.5:
                    m = (xx >= x0) & (xx < x0 + sw) & (yy >= y0) & (yy < y0 + sh)
                else:
                    m = ((xx - x0 - sw / 2) / (sw / 2)) ** 2 + ((yy - y0 - sh / 2) / (sh / 2)) ** 2 <= 1
                stripes = 0.8 + 0.2 * np.sin((xx + yy) * 0.5)[..., None]
                out = np.where(m[..., None], color * stripes, out)
                boxes.append([x0, y0, int(sw), int(sh)])
        ctx.record["occluders"] = boxes
        ctx.record["_occluder_mask"] = np.any(out != img, axis=-1)
        return out


@dataclass
class Haze(Degradation):
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta d).

    Without a depth map d is a vertical ramp (0 at the bottom row, 1 at the
    top), a fair stand-in for outdoor views over a ground plane.
    """

    beta: float = 1.2
    airlight: tuple[float, float, float] = (0.85, 0.87, 0.9)
    name = "haze"

    def __call__(self, img, ctx):
        h = img.shape[0]
        d = np.linspace(1, 0, h)[:, None, None]
        t = np.exp(-self.beta * d)
        return img * t + np.asarray(self.airlight) * (1 - t)


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def _convolve(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """2D convolution per channel with edge padding (kernel is small)."""
    kh, kw = k.shape
    ph, pw = kh // 2, kw // 2
    pad = np.pad(img, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    for dy, dx in zip(*np.nonzero(k)):
        out += k[dy, dx] * pad[dy : dy + img.shape[0], dx : dx + img.shape[1]]
    return out


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _rescale_cameras(raw, dst: Path, factor: int) -> None:
    """Make the copy's camera files agree with images downsampled by `factor`."""
    if raw.format in ("blender", "llff"):
        return  # Blender: field of view; LLFF: focal scaled to the images found
    if raw.format == "colmap":
        from .colmap import find_sparse_dir, read_model

        sparse = find_sparse_dir(dst)
        rec = read_model(sparse)
        for cam in rec.cameras.values():
            cam.rescale(cam.width // factor, cam.height // factor)
        rec.write(sparse) if (sparse / "cameras.bin").is_file() else rec.write_text(sparse)
        return
    if raw.format == "nerfstudio":
        path = dst / "transforms.json"
        meta = json.loads(path.read_text())
        for d in [meta] + meta.get("frames", []):
            for k in ("fl_x", "fl_y", "cx", "cy"):
                if k in d:
                    d[k] = d[k] / factor
            for k in ("w", "h"):
                if k in d:
                    d[k] = int(d[k]) // factor
        with atomic_write(path, "w") as f:
            json.dump(meta, f, indent=1)


def degrade(
    src: str | Path,
    dst: str | Path,
    ops: list[Degradation],
    seed: int = 0,
    renderer: Renderer | None = None,
    splits: tuple[str, ...] = ("train",),
) -> Path:
    """Copy the scene `src` to `dst` and corrupt the images of `splits` with `ops`, in order.

    Test views stay clean by default (benchmarks compare against them); pass
    splits=("train", "test") to corrupt everything. Returns `dst`.
    """
    from .loader import detect_format, read_raw
    from .scene import every_nth_split

    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise SplatError(f"{dst}: output folder already exists")
    raw = read_raw(src, detect_format(src))
    if raw.splits:
        chosen = sorted(i for s in splits for i in raw.splits.get(s, []))
    else:
        train, test = every_nth_split(raw.names, 8)
        chosen = sorted((train if "train" in splits else []) + (test if "test" in splits else []))
    shutil.copytree(src, dst)
    factors = [op.factor for op in ops if isinstance(op, Downsample)]
    if factors and len(chosen) != len(raw.names):
        raise SplatError("downsample changes the cameras: apply it to every split (splits=('train', 'test'))")
    per_image = {}
    for i in chosen:
        out_path = dst / raw.image_paths[i].resolve().relative_to(src.resolve())
        arr = np.asarray(Image.open(out_path))
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, -1)
        rgb, alpha = arr[..., :3].astype(np.float64) / 255, (arr[..., 3] if arr.shape[-1] == 4 else None)
        ctx = Context(np.random.default_rng([seed, i]), raw.viewmats[i], raw.intrinsics[i].K(), renderer)
        for op in ops:
            rgb = op(rgb, ctx)
            if alpha is not None and "_occluder_mask" in ctx.record:
                alpha = np.where(ctx.record.pop("_occluder_mask"), 255, alpha).astype(np.uint8)
            if isinstance(op, Downsample) and alpha is not None:
                alpha = np.asarray(Image.fromarray(alpha).resize(rgb.shape[1::-1], Image.Resampling.BOX))
        ctx.record.pop("_occluder_mask", None)
        out = _to_u8(rgb)
        if alpha is not None:
            out = np.concatenate([out, alpha[..., None]], -1)
        buf = io.BytesIO()
        fmt = "JPEG" if out_path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
        Image.fromarray(out).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        with atomic_write(out_path, "wb") as f:
            f.write(buf.getvalue())
        if ctx.record:
            per_image[raw.names[i]] = ctx.record
    for f in factors:
        _rescale_cameras(raw, dst, f)
    manifest = {"source": str(src.resolve()), "seed": seed, "splits": list(splits),
                "operations": [op.params() for op in ops], "images": len(chosen), "per_image": per_image}  # fmt: skip
    with atomic_write(dst / "degradations.json", "w") as f:
        json.dump(manifest, f, indent=1)
    return dst
