"""PlayCanvas formats: the compressed ply (SuperSplat) and SOG (zip bundle or folder).

Compressed ply: splats in chunks of 256; each chunk stores min/max bounds, each splat
four u32: position and log-scale as 11-10-11 bit fractions of the chunk bounds,
rotation as smallest-three (2-bit index + 3 x 10 bits), color RGBA 8-8-8-8 (color
lerped in the chunk's color bounds, alpha = opacity). Optional `sh` element: u8 f_rest_*.

SOG v2: lossless WebP images, splat i at pixel i (row-major) of each image:
means_l/means_u (low/high bytes of 16-bit positions in log-space, lerped in meta bounds),
quats (smallest-three: RGB components, A = 252 + largest index, wxyz order),
scales and sh0 (RGB index 256-entry codebooks; sh0's A = opacity),
shN (labels -> palette of centroids, each centroid row indexes a codebook).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from splat.formats.common import SH_C0, bad_file, logit, sh_degree_for, unorm8
from splat.formats.ply_io import PlyFile
from splat.scene import GaussianScene

CHUNK_SIZE = 256
CHUNK_BOUNDS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]  # fmt: skip
PACKED = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])  # stored components per largest index


def is_compressed_ply(ply: PlyFile) -> bool:
    vertex = ply.elements.get("vertex")
    return "chunk" in ply.elements and vertex is not None and "packed_position" in (vertex.dtype.names or ())


def _fractions(v: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    """Unsigned fields packed high to low -> [N, len(bits)] fractions in [0, 1]."""
    out, shift = [], sum(bits)
    for b in bits:
        shift -= b
        out.append(((v >> shift) & ((1 << b) - 1)) / float((1 << b) - 1))
    return np.stack(out, axis=-1)


def _smallest_three(largest: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Rebuild unit quaternions [N, 4] from the 3 stored components and the largest's index."""
    q = np.zeros((len(largest), 4))
    np.put_along_axis(q, OTHERS[largest], stored, axis=1)
    rest = np.sqrt(np.maximum(0.0, 1.0 - (stored**2).sum(-1)))
    np.put_along_axis(q, largest[:, None], rest[:, None], axis=1)
    return q


def scene_from_compressed_ply(ply: PlyFile, path: str | os.PathLike) -> GaussianScene:
    chunk, vertex = ply.elements["chunk"], ply.elements["vertex"]
    for names, element, what in ((CHUNK_BOUNDS, chunk, "chunk"), (PACKED, vertex, "vertex")):
        missing = [n for n in names if n not in element.dtype.names]
        if missing:
            raise bad_file(path, f"compressed ply: missing {what} property {missing[0]}")
    n = len(vertex)
    if len(chunk) != math.ceil(n / CHUNK_SIZE):
        raise bad_file(path, f"compressed ply: {len(chunk)} chunks for {n} splats, expected {math.ceil(n / CHUNK_SIZE)}")
    ci = np.arange(n) // CHUNK_SIZE

    def lerp(prefix_lo: str, prefix_hi: str, axes: str, t: np.ndarray) -> np.ndarray:
        lo = np.stack([chunk[f"{prefix_lo}{a}"][ci] for a in axes], -1).astype(np.float64)
        hi = np.stack([chunk[f"{prefix_hi}{a}"][ci] for a in axes], -1).astype(np.float64)
        return lo + (hi - lo) * t

    means = lerp("min_", "max_", "xyz", _fractions(vertex["packed_position"], (11, 10, 11)))
    log_scales = lerp("min_scale_", "max_scale_", "xyz", _fractions(vertex["packed_scale"], (11, 10, 11)))
    rot = vertex["packed_rotation"]
    stored = (_fractions(rot, (10, 10, 10)) - 0.5) * math.sqrt(2.0)  # components lie in [-1/sqrt2, 1/sqrt2]
    quats = _smallest_three((rot >> 30).astype(np.int64), stored)  # rot_0..3 order, i.e. wxyz
    rgba = _fractions(vertex["packed_color"], (8, 8, 8, 8))
    color = rgba[:, :3]
    if "min_r" in chunk.dtype.names:
        color = lerp("min_", "max_", "rgb", color)
    alpha = unorm8(np.round(rgba[:, 3] * 255.0))
    shN = np.zeros((n, 0, 3), np.float32)
    if "sh" in ply.elements:
        sh = ply.elements["sh"]
        cols = [c for c in sh.dtype.names if c.startswith("f_rest_")]
        per_channel = len(cols) // 3
        sh_degree_for(per_channel + 1, path)
        raw = np.stack([sh[f"f_rest_{i}"] for i in range(len(cols))], -1).astype(np.float64)
        unit = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256.0))
        shN = ((unit - 0.5) * 8.0).reshape(n, 3, per_channel).transpose(0, 2, 1)
    return GaussianScene(
        means=torch.from_numpy(means.astype(np.float32)),
        quats=torch.from_numpy(quats.astype(np.float32)),
        log_scales=torch.from_numpy(log_scales.astype(np.float32)),
        opacity_logits=torch.from_numpy(logit(alpha).astype(np.float32)),
        sh0=torch.from_numpy(((color - 0.5) / SH_C0).astype(np.float32)[:, None, :]),
        shN=torch.from_numpy(np.ascontiguousarray(shN, dtype=np.float32)),
    )


# --- SOG ------------------------------------------------------------------------------------


class _SogFiles:
    """Reads the files of a SOG, from a zip bundle or a folder."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = None
        if path.is_dir():
            self.folder = path
        elif path.name == "meta.json":
            self.folder = path.parent
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise bad_file(path, "not a SOG bundle: truncated or not a zip archive") from None
            metas = [n for n in self.zip.namelist() if n.rsplit("/", 1)[-1] == "meta.json"]
            if not metas:
                raise bad_file(path, "SOG bundle has no meta.json")
            self.prefix = metas[0][: -len("meta.json")]

    def read(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(self.prefix + name)
            return (self.folder / name).read_bytes()
        except (KeyError, FileNotFoundError):
            raise bad_file(self.path, f"SOG is missing {name}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as err:
            raise bad_file(self.path, f"cannot read {name} from SOG ({err})") from None

    def image_2d(self, name: str) -> np.ndarray:
        """RGBA pixels [H, W, 4] uint8."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self.read(name))) as im:
                return np.asarray(im.convert("RGBA"))
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise bad_file(self.path, f"corrupt image {name} in SOG ({err})") from None

    def image(self, name: str, count: int) -> np.ndarray:
        """RGBA pixels [count, 4] uint8, in row-major order."""
        pixels = self.image_2d(name).reshape(-1, 4)
        if len(pixels) < count:
            raise bad_file(self.path, f"SOG image {name} has {len(pixels)} pixels for {count} splats")
        return pixels[:count]


def read_sog(path: str | os.PathLike) -> GaussianScene:
    path = Path(path)
    files = _SogFiles(path)
    try:
        meta = json.loads(files.read("meta.json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise bad_file(path, f"SOG meta.json is not valid JSON ({err})") from None
    version = meta.get("version", 1) if isinstance(meta, dict) else None
    if version != 2:
        raise bad_file(path, f"unsupported SOG version {version} (version 2 is read)")
    try:
        return _decode_sog_v2(files, meta)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise bad_file(path, f"corrupt SOG meta.json or images ({type(err).__name__}: {err})") from None


def _decode_sog_v2(files: _SogFiles, meta: dict) -> GaussianScene:
    n = int(meta["count"])
    m = meta["means"]
    lo, hi = files.image(m["files"][0], n), files.image(m["files"][1], n)
    u16 = lo[:, :3].astype(np.float64) + 256.0 * hi[:, :3]
    mins, maxs = np.array(m["mins"], np.float64), np.array(m["maxs"], np.float64)
    v = mins + (maxs - mins) * u16 / 65535.0
    means = np.sign(v) * np.expm1(np.abs(v))  # positions are stored as sign(x) log(1 + |x|)

    q = files.image(meta["quats"]["files"][0], n)
    tag = q[:, 3].astype(np.int64) - 252
    if ((tag < 0) | (tag > 3)).any():
        raise ValueError("quats.webp alpha is not 252..255")
    quats = _smallest_three(tag, (q[:, :3] / 255.0 * 2.0 - 1.0) / math.sqrt(2.0))  # wxyz

    scale_book = np.array(meta["scales"]["codebook"], np.float64)
    log_scales = scale_book[files.image(meta["scales"]["files"][0], n)[:, :3]]
    sh0_px = files.image(meta["sh0"]["files"][0], n)
    dc = np.array(meta["sh0"]["codebook"], np.float64)[sh0_px[:, :3]]
    opacity_logits = logit(unorm8(sh0_px[:, 3]))

    shN = np.zeros((n, 0, 3))
    if meta.get("shN"):
        s = meta["shN"]
        coeffs = (int(s["bands"]) + 1) ** 2 - 1
        labels_px = files.image(s["files"][1], n)
        labels = labels_px[:, 0].astype(np.int64) | (labels_px[:, 1].astype(np.int64) << 8)
        centroids = files.image_2d(s["files"][0])  # [palette / 64, 64 * coeffs, 4]
        if centroids.shape[1] != 64 * coeffs:
            raise ValueError(f"shN centroids image is {centroids.shape[1]} wide, expected {64 * coeffs}")
        palette = centroids[..., :3].reshape(-1, coeffs, 3)  # 64 centroids per row, coeffs pixels each
        if labels.max(initial=0) >= len(palette):
            raise ValueError(f"shN label {labels.max()} beyond the {len(palette)} centroids")
        shN = np.array(s["codebook"], np.float64)[palette[labels]]  # [N, coeffs, 3]
    return GaussianScene(
        means=torch.from_numpy(means.astype(np.float32)),
        quats=torch.from_numpy(quats.astype(np.float32)),
        log_scales=torch.from_numpy(log_scales.astype(np.float32)),
        opacity_logits=torch.from_numpy(opacity_logits.astype(np.float32)),
        sh0=torch.from_numpy(dc.astype(np.float32)[:, None, :]),
        shN=torch.from_numpy(np.ascontiguousarray(shN, dtype=np.float32)),
    )
