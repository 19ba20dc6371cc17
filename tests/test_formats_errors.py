"""Unknown, corrupt and truncated inputs raise SplatError naming the file and the problem."""

from __future__ import annotations

import gzip
import json
import struct
import zipfile

import pytest
import torch

import splat
from splat.errors import SplatError
from splat.scene import GaussianScene


def tiny_scene(n: int = 40, degree: int = 1) -> GaussianScene:
    g = torch.Generator().manual_seed(1)
    return GaussianScene(
        means=torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        log_scales=torch.randn(n, 3, generator=g) - 3,
        opacity_logits=torch.randn(n, generator=g),
        sh0=torch.randn(n, 1, 3, generator=g),
        shN=torch.randn(n, (degree + 1) ** 2 - 1, 3, generator=g) * 0.1,
    )


def expect_error(path, match: str):
    with pytest.raises(SplatError, match=match) as info:
        splat.load(path)
    assert str(path) in str(info.value)  # names the file


def test_missing_and_unknown_files(tmp_path):
    expect_error(tmp_path / "nope.ply", "no such file")
    (tmp_path / "notes.txt").write_text("hello")
    expect_error(tmp_path / "notes.txt", "unknown splat format")
    (tmp_path / "empty.spz").write_bytes(b"")
    expect_error(tmp_path / "empty.spz", "empty file")
    (tmp_path / "empty_dir").mkdir()
    expect_error(tmp_path / "empty_dir", "neither a SOG folder")


def test_ply_errors(tmp_path):
    path = tmp_path / "a.ply"
    tiny_scene().save(path)
    data = path.read_bytes()
    (tmp_path / "short.ply").write_bytes(data[:-10])
    expect_error(tmp_path / "short.ply", "truncated")
    (tmp_path / "magic.ply").write_bytes(b"plx\n" + data[4:])
    expect_error(tmp_path / "magic.ply", "bad magic")
    (tmp_path / "noend.ply").write_bytes(data[:100])
    expect_error(tmp_path / "noend.ply", "end_header")
    (tmp_path / "ascii.ply").write_bytes(data.replace(b"binary_little_endian", b"ascii", 1))
    expect_error(tmp_path / "ascii.ply", "unsupported PLY format")
    (tmp_path / "cloud.ply").write_bytes(data.replace(b"property float opacity", b"property float opacitx"))
    expect_error(tmp_path / "cloud.ply", "missing vertex property opacity")


def test_compressed_ply_chunk_count_is_checked(tmp_path):
    header = ("ply\nformat binary_little_endian 1.0\nelement chunk 2\n"
              + "".join(f"property float {p}\n" for p in ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                        "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"])
              + "element vertex 3\n" + "".join(f"property uint packed_{p}\n"
                                               for p in ["position", "rotation", "scale", "color"])
              + "end_header\n")  # fmt: skip
    (tmp_path / "c.ply").write_bytes(header.encode() + bytes(2 * 12 * 4 + 3 * 16))
    expect_error(tmp_path / "c.ply", "2 chunks for 3 splats")


def test_splat_errors(tmp_path):
    tiny_scene().save(tmp_path / "a.splat")
    data = (tmp_path / "a.splat").read_bytes()
    (tmp_path / "b.splat").write_bytes(data[:-5])
    expect_error(tmp_path / "b.splat", "not a multiple of 32")


@pytest.mark.parametrize("version", [3, 4])
def test_spz_errors(tmp_path, version):
    tiny_scene().save(tmp_path / "a.spz", version=version)
    data = (tmp_path / "a.spz").read_bytes()
    (tmp_path / "short.spz").write_bytes(data[: len(data) // 2])
    expect_error(tmp_path / "short.spz", "truncated")
    raw = gzip.decompress(data) if version < 4 else data
    bad_version = raw[:4] + struct.pack("<I", 9) + raw[8:]
    (tmp_path / "v9.spz").write_bytes(gzip.compress(bad_version) if version < 4 else bad_version)
    expect_error(tmp_path / "v9.spz", "unsupported .spz version 9")
    bad_magic = b"XXXX" + raw[4:]
    (tmp_path / "m.spz").write_bytes(gzip.compress(bad_magic) if version < 4 else bad_magic)
    expect_error(tmp_path / "m.spz", "bad magic")


def test_sog_errors(tmp_path):
    (tmp_path / "a.sog").write_bytes(b"PK\x03\x04 not really a zip")
    expect_error(tmp_path / "a.sog", "not a zip")
    with zipfile.ZipFile(tmp_path / "b.sog", "w") as z:
        z.writestr("readme.txt", "hi")
    expect_error(tmp_path / "b.sog", "no meta.json")
    with zipfile.ZipFile(tmp_path / "c.sog", "w") as z:
        z.writestr("meta.json", json.dumps({"version": 7, "count": 1}))
    expect_error(tmp_path / "c.sog", "unsupported SOG version 7")
    with zipfile.ZipFile(tmp_path / "d.sog", "w") as z:
        z.writestr("meta.json", json.dumps({"version": 2, "count": 1, "means": {"files": ["m.webp", "u.webp"]}}))
        z.writestr("m.webp", b"RIFF garbage")
    expect_error(tmp_path / "d.sog", "corrupt image m.webp")


def test_checkpoint_errors(tmp_path):
    torch.save({"model": torch.zeros(3)}, tmp_path / "a.pt")
    expect_error(tmp_path / "a.pt", "missing 'means'")
    (tmp_path / "b.pt").write_bytes(b"garbage" * 10)
    expect_error(tmp_path / "b.pt", "cannot read torch checkpoint")


def test_save_refuses_unknown_extensions(tmp_path):
    with pytest.raises(SplatError, match="cannot write '.obj'"):
        tiny_scene().save(tmp_path / "a.obj")
    with pytest.raises(SplatError, match="compressed ply"):
        tiny_scene().save(tmp_path / "a.compressed.ply")
    assert not list(tmp_path.iterdir())  # nothing half-written
