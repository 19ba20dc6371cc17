"""Generic binary PLY: the header and fixed-size element tables, as numpy structured arrays.

Both the 3DGS layout (`ply.py`) and PlayCanvas's compressed ply (`playcanvas.py`)
sit on top of this. List properties (meshes) are not needed for splats and are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from splat.formats.common import bad_file, read_bytes

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
                "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}  # fmt: skip
MAX_HEADER_BYTES = 1 << 20


@dataclass
class PlyFile:
    elements: dict[str, np.ndarray]  # element name -> structured array [count]
    comments: list[str] = field(default_factory=list)


@dataclass
class _ElementSpec:
    name: str
    count: int
    properties: list[tuple[str, str]]  # (name, numpy dtype code)


def is_ply(data: bytes) -> bool:
    return data[:4] in (b"ply\n", b"ply\r")


def read_ply_header(data: bytes, path: str | os.PathLike) -> tuple[list[_ElementSpec], list[str], str, int]:
    """-> element specs, comments, byte order ('<' or '>'), offset of the body."""
    if not is_ply(data):
        raise bad_file(path, "bad magic: not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise bad_file(path, "truncated or corrupt PLY header: no 'end_header' line")
    body = data.find(b"\n", end) + 1
    if body == 0:
        raise bad_file(path, "truncated PLY header: nothing after 'end_header'")
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    elements: list[_ElementSpec] = []
    comments: list[str] = []
    order = None
    for line in lines[1:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "format":
            formats = {"binary_little_endian": "<", "binary_big_endian": ">"}
            if len(words) < 2 or words[1] not in formats:
                raise bad_file(path, f"unsupported PLY format '{' '.join(words[1:])}' (only binary PLY is read)")
            order = formats[words[1]]
        elif words[0] in ("comment", "obj_info"):
            comments.append(line.partition(" ")[2])
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(_ElementSpec(words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if words[1] == "list":
                raise bad_file(path, f"list property '{words[-1]}' in element '{elements[-1].name}' is not supported")
            if len(words) != 3 or words[1] not in PLY_TYPES:
                raise bad_file(path, f"bad PLY property line '{line}'")
            elements[-1].properties.append((words[2], PLY_TYPES[words[1]]))
        else:
            raise bad_file(path, f"bad PLY header line '{line}'")
    if order is None:
        raise bad_file(path, "PLY header has no 'format' line")
    return elements, comments, order, body


def read_ply(path: str | os.PathLike, data: bytes | None = None) -> PlyFile:
    data = read_bytes(path) if data is None else data
    specs, comments, order, offset = read_ply_header(data, path)
    elements = {}
    for spec in specs:
        dtype = np.dtype([(name, order + code) for name, code in spec.properties])
        size = dtype.itemsize * spec.count
        if offset + size > len(data):
            raise bad_file(
                path,
                f"truncated: element '{spec.name}' needs {size} bytes at offset {offset}, "
                f"the file has {len(data) - offset}",
            )
        elements[spec.name] = np.frombuffer(data, dtype=dtype, count=spec.count, offset=offset)
        offset += size
    return PlyFile(elements, comments)


def write_ply(f: IO[bytes], elements: dict[str, np.ndarray], comments: list[str] = ()) -> None:
    """Write structured arrays as binary little-endian PLY elements, in dict order."""
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    for name, table in elements.items():
        header.append(f"element {name} {len(table)}")
        for prop in table.dtype.names:
            code = table.dtype[prop].newbyteorder("<").str[1:]
            header.append(f"property {NUMPY_TO_PLY[code]} {prop}")
    header.append("end_header\n")
    f.write("\n".join(header).encode("ascii"))
    for table in elements.values():
        little = table.dtype.newbyteorder("<")
        f.write(np.ascontiguousarray(table, dtype=little).tobytes())


def structured(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Columns of equal length -> one structured array (the PLY element layout)."""
    n = len(next(iter(columns.values())))
    table = np.empty(n, dtype=[(k, v.dtype.newbyteorder("<")) for k, v in columns.items()])
    for k, v in columns.items():
        table[k] = v
    return table
