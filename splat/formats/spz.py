"""Niantic `.spz` (versions 1-4 read; 2, 3 and 4 written).

v1-3: one gzip stream holding a 16-byte header then the attribute blocks.
v4: a plain 32-byte header, a table of contents, then one zstd stream per attribute.
Blocks, in order: positions (24-bit fixed point), alphas (u8 sigmoid), colors (u8 of
SH DC * 0.15 + 0.5), scales (u8 of (log + 10) * 16), rotations (v2: u8 xyz with w >= 0;
v3+: 32-bit smallest-three), SH bands (u8, coefficient-major, channels inner).
Files are in a y-up, z-back frame (RUB); we convert to and from the 3DGS frame (RDF).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np
import torch

from splat.atomic import atomic_write
from splat.formats.common import bad_file, logit, read_bytes, unorm8
from splat.scene import GaussianScene

MAGIC = 0x5053474E  # "NGSP"
LEGACY_HEADER = struct.Struct("<IIIBBBB")  # magic, version, points, sh degree, fractional bits, flags, reserved
V4_HEADER = struct.Struct("<IIIBBBBI12x")  # ... flags, stream count, TOC offset, reserved
FLAG_ANTIALIASED, FLAG_EXTENSIONS = 0x1, 0x2
COLOR_SCALE = 0.15
SQRT1_2 = math.sqrt(0.5)
# indices of the three stored components for each largest-component index (xyzw order)
OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
# RDF <-> RUB is a 180-degree turn about x: y and z flip sign, and so does each SH basis
# function odd in (y, z). Per coefficient of bands 1..4, 3DGS basis order.
SH_FLIP = np.array(
    [-1, -1, 1] + [-1, 1, 1, -1, 1] + [-1, 1, -1, -1, 1, -1, 1] + [-1, 1, -1, 1, 1, -1, 1, -1, 1], np.float32
)


def _block_sizes(n: int, version: int, sh_coeffs: int) -> list[tuple[str, int]]:
    return [
        ("positions", n * (6 if version == 1 else 9)),
        ("alphas", n),
        ("colors", n * 3),
        ("scales", n * 3),
        ("rotations", n * (3 if version <= 2 else 4)),
        ("sh", n * sh_coeffs * 3),
    ]


def _split_legacy(data: bytes, path) -> tuple[dict[str, bytes], tuple]:
    try:
        raw = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise bad_file(path, f"truncated or corrupt gzip stream in .spz ({err})") from None
    if len(raw) < LEGACY_HEADER.size:
        raise bad_file(path, "truncated .spz: shorter than its 16-byte header")
    magic, version, n, degree, frac, flags, _ = LEGACY_HEADER.unpack_from(raw)
    _check_header(path, magic, version, degree, legacy=True)
    blocks, offset = {}, LEGACY_HEADER.size
    for name, size in _block_sizes(n, version, (degree + 1) ** 2 - 1):
        if offset + size > len(raw):
            raise bad_file(path, f"truncated .spz: the {name} block needs {size} bytes, {len(raw) - offset} remain")
        blocks[name] = raw[offset : offset + size]
        offset += size
    return blocks, (version, n, degree, frac, flags)


def _split_v4(data: bytes, path) -> tuple[dict[str, bytes], tuple]:
    import zstandard

    if len(data) < V4_HEADER.size:
        raise bad_file(path, "truncated .spz: shorter than its 32-byte header")
    magic, version, n, degree, frac, flags, num_streams, toc = V4_HEADER.unpack_from(data)
    _check_header(path, magic, version, degree, legacy=False)
    sizes = [(name, size) for name, size in _block_sizes(n, version, (degree + 1) ** 2 - 1) if size]
    if num_streams != len(sizes):
        raise bad_file(path, f"corrupt .spz: {num_streams} streams, expected {len(sizes)}")
    if toc + 16 * num_streams > len(data):
        raise bad_file(path, "truncated .spz: table of contents past the end of the file")
    table = np.frombuffer(data, "<u8", count=2 * num_streams, offset=toc).reshape(-1, 2)
    blocks, offset = {}, toc + 16 * num_streams
    decompressor = zstandard.ZstdDecompressor()
    for (name, size), (packed, unpacked) in zip(sizes, table.tolist()):
        if unpacked != size:
            raise bad_file(path, f"corrupt .spz: {name} stream holds {unpacked} bytes, expected {size}")
        if offset + packed > len(data):
            raise bad_file(path, f"truncated .spz: the {name} stream runs past the end of the file")
        try:
            blocks[name] = decompressor.decompress(data[offset : offset + packed], max_output_size=size)
        except zstandard.ZstdError as err:
            raise bad_file(path, f"corrupt zstd stream for {name} in .spz ({err})") from None
        if len(blocks[name]) != size:
            raise bad_file(path, f"corrupt .spz: {name} stream decompressed to {len(blocks[name])} bytes")
        offset += packed
    blocks.setdefault("sh", b"")
    return blocks, (version, n, degree, frac, flags)


def _check_header(path, magic: int, version: int, degree: int, legacy: bool) -> None:
    if magic != MAGIC:
        raise bad_file(path, "bad magic: not an .spz file")
    if (legacy and not 1 <= version <= 3) or (not legacy and version != 4):
        raise bad_file(path, f"unsupported .spz version {version}")
    if degree > 4:
        raise bad_file(path, f"unsupported SH degree {degree} in .spz")


def decode_smallest_three(packed: np.ndarray) -> np.ndarray:
    """u32 [N] -> quaternions [N, 4] xyzw: 2-bit largest index, then 3 x (sign bit, 9-bit magnitude)."""
    largest = (packed >> 30).astype(np.int64)
    fields = np.stack([(packed >> shift) & 0x3FF for shift in (20, 10, 0)], axis=-1)
    values = (fields & 0x1FF) / 511.0 * SQRT1_2 * np.where(fields & 0x200, -1.0, 1.0)
    q = np.zeros((len(packed), 4))
    np.put_along_axis(q, OTHERS[largest], values, axis=1)
    np.put_along_axis(q, largest[:, None], np.sqrt(np.maximum(0.0, 1.0 - (values**2).sum(-1)))[:, None], axis=1)
    return q


def encode_smallest_three(q: np.ndarray) -> np.ndarray:
    """unit quaternions [N, 4] xyzw -> u32 [N]."""
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(np.take_along_axis(q, largest[:, None], 1) < 0, -1.0, 1.0)  # largest becomes positive
    values = np.take_along_axis(q, OTHERS[largest], 1)
    mag = np.minimum(np.floor(511.0 * np.abs(values) / SQRT1_2 + 0.5), 511).astype(np.uint32)
    fields = (values < 0).astype(np.uint32) << 9 | mag
    return (largest.astype(np.uint32) << 30) | (fields[:, 0] << 20) | (fields[:, 1] << 10) | fields[:, 2]


def read_spz(path: str | os.PathLike) -> GaussianScene:
    data = read_bytes(path)
    if data[:2] == b"\x1f\x8b":
        blocks, header = _split_legacy(data, path)
    elif data[:4] == b"NGSP":
        blocks, header = _split_v4(data, path)
    else:
        raise bad_file(path, "bad magic: not an .spz file (neither gzip nor 'NGSP')")
    version, n, degree, frac, flags = header
    if version == 1:
        means = np.frombuffer(blocks["positions"], "<f2").reshape(n, 3).astype(np.float64)
    else:
        b = np.frombuffer(blocks["positions"], np.uint8).reshape(n, 3, 3).astype(np.int32)
        fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        means = ((fixed ^ 0x800000) - 0x800000) / float(1 << frac)  # sign-extend 24 bits
    alphas = np.frombuffer(blocks["alphas"], np.uint8)
    colors = np.frombuffer(blocks["colors"], np.uint8).reshape(n, 3)
    scales = np.frombuffer(blocks["scales"], np.uint8).reshape(n, 3)
    if version <= 2:
        xyz = np.frombuffer(blocks["rotations"], np.uint8).reshape(n, 3) / 127.5 - 1.0
        xyzw = np.concatenate([xyz, np.sqrt(np.maximum(0.0, 1.0 - (xyz**2).sum(-1)))[:, None]], axis=1)
    else:
        xyzw = decode_smallest_three(np.frombuffer(blocks["rotations"], "<u4"))
    k = (degree + 1) ** 2 - 1
    shN = (np.frombuffer(blocks["sh"], np.uint8).reshape(n, k, 3).astype(np.float32) - 128.0) / 128.0
    # RUB -> RDF
    means = means * np.array([1.0, -1.0, -1.0])
    wxyz = xyzw[:, [3, 0, 1, 2]] * np.array([1.0, 1.0, -1.0, -1.0])
    shN = shN * SH_FLIP[:k, None]
    return GaussianScene(
        means=torch.from_numpy(means.astype(np.float32)),
        quats=torch.from_numpy(wxyz.astype(np.float32)),
        log_scales=torch.from_numpy((scales / 16.0 - 10.0).astype(np.float32)),
        opacity_logits=torch.from_numpy(logit(unorm8(alphas)).astype(np.float32)),
        sh0=torch.from_numpy(((colors / 255.0 - 0.5) / COLOR_SCALE).astype(np.float32)[:, None, :]),
        shN=torch.from_numpy(np.ascontiguousarray(shN)),
        antialiased=bool(flags & FLAG_ANTIALIASED),
    )


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _quantize_sh(x: np.ndarray, bits: int) -> np.ndarray:
    """8-bit SH with only `bits` significant: round to the nearest bucket center (0 stays exact)."""
    bucket = 1 << (8 - bits)
    q = np.round(x * 128.0) + 128.0
    q = np.floor((q + bucket // 2) / bucket) * bucket
    return np.clip(q, 0, 255).astype(np.uint8)


def fractional_bits_for(means: np.ndarray) -> int:
    """12 bits (~0.25 mm) like the reference writer, fewer if the scene would not fit in 24 bits."""
    extent = float(np.abs(means).max(initial=0.0))
    if extent == 0.0:
        return 12
    return int(max(0, min(12, math.floor(math.log2((2**23 - 1) / extent)))))


def encode_blocks(scene: GaussianScene, version: int, sh1_bits: int, sh_rest_bits: int) -> tuple[int, list[bytes]]:
    s = scene.detach().to("cpu")
    n, k = len(s), s.shN.shape[1]
    if s.sh_degree > 4:
        raise ValueError(f".spz holds SH degree <= 4, the scene has {s.sh_degree}")
    # RDF -> RUB
    means = s.means.double().numpy() * np.array([1.0, -1.0, -1.0])
    xyzw = s.unit_quats.double().numpy()[:, [1, 2, 3, 0]] * np.array([1.0, -1.0, -1.0, 1.0])
    shN = s.shN.double().numpy() * SH_FLIP[:k, None]
    frac = fractional_bits_for(means)
    fixed = np.round(means * (1 << frac)).astype(np.int64) & 0xFFFFFF
    positions = np.stack([(fixed >> shift) & 0xFF for shift in (0, 8, 16)], axis=-1).astype(np.uint8)
    if version == 2:
        xyz = xyzw[:, :3] * np.where(xyzw[:, 3:] < 0, -1.0, 1.0)  # w >= 0 is implied
        rotations = _to_u8(xyz * 127.5 + 127.5).tobytes()
    else:
        rotations = encode_smallest_three(xyzw).astype("<u4").tobytes()
    sh = np.empty((n, k, 3), np.uint8)
    sh[:, :3] = _quantize_sh(shN[:, :3], sh1_bits)
    sh[:, 3:] = _quantize_sh(shN[:, 3:], sh_rest_bits)
    blocks = [
        positions.tobytes(),
        _to_u8(s.opacities.double().numpy() * 255.0).tobytes(),
        _to_u8(s.sh0[:, 0].double().numpy() * (COLOR_SCALE * 255.0) + 127.5).tobytes(),
        _to_u8((s.log_scales.double().numpy() + 10.0) * 16.0).tobytes(),
        rotations,
        sh.tobytes(),
    ]
    return frac, blocks


def encode_spz(scene: GaussianScene, version: int = 3, sh1_bits: int = 5, sh_rest_bits: int = 4) -> bytes:
    if version not in (2, 3, 4):
        raise ValueError(f".spz version {version} cannot be written (2, 3 or 4)")
    frac, blocks = encode_blocks(scene, version, sh1_bits, sh_rest_bits)
    flags = FLAG_ANTIALIASED if scene.antialiased else 0
    if version < 4:
        header = LEGACY_HEADER.pack(MAGIC, version, len(scene), scene.sh_degree, frac, flags, 0)
        return gzip.compress(header + b"".join(blocks), compresslevel=6, mtime=0)
    import zstandard

    compressor = zstandard.ZstdCompressor(level=12)
    streams = [compressor.compress(b) for b in blocks if b]
    header = V4_HEADER.pack(MAGIC, 4, len(scene), scene.sh_degree, frac, flags, len(streams), V4_HEADER.size)
    toc = np.array([[len(c), len(b)] for c, b in zip(streams, [b for b in blocks if b])], "<u8")
    return header + toc.tobytes() + b"".join(streams)


def write_spz(scene: GaussianScene, path: str | os.PathLike, version: int = 3,
              sh1_bits: int = 5, sh_rest_bits: int = 4) -> None:  # fmt: skip
    data = encode_spz(scene, version, sh1_bits, sh_rest_bits)
    with atomic_write(path, "wb") as f:
        f.write(data)
