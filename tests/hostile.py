"""Builders of hostile files for the adversarial tests (tests/test_hostile.py).

Each builder writes a small file whose header or structure asks for something harmful (huge
allocations, deep recursion, alias expansion, paths outside the root) without being big itself.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import yaml

XSS = '<img src=x onerror="window.__xss=1">'


def tiff_header(path: Path, width: int, height: int) -> Path:
    """A 200-byte little-endian TIFF declaring ``width`` x ``height`` 8-bit pixels."""
    entries = [
        (256, 4, width),  # ImageWidth LONG
        (257, 4, height),  # ImageLength LONG
        (258, 3, 8),  # BitsPerSample SHORT
        (259, 3, 1),  # Compression: none
        (262, 3, 1),  # Photometric: black is zero
        (273, 4, 8 + 2 + 12 * 9 + 4),  # StripOffsets: just after the IFD
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip
        (279, 4, min(width * height, 2**32 - 1)),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, val in entries:
        value = struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val)
        ifd += struct.pack("<HHI", tag, typ, 1) + value
    data = b"II" + struct.pack("<HI", 42, 8) + ifd + struct.pack("<I", 0) + b"\0" * 64
    path.write_bytes(data)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR declares ``width`` x ``height`` grey pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def deep_json(path: Path, depth: int = 200_000) -> Path:
    path.write_text("[" * depth + "]" * depth)
    return path


def billion_laughs_yaml(levels: int = 9) -> str:
    """A YAML document whose aliases expand to 10**levels nodes (a few hundred bytes)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        refs = ", ".join([f"*a{k - 1}"] * 10)
        lines.append(f"a{k}: &a{k} [{refs}]")
    return "\n".join(lines) + "\n"


def zip_bomb(path: Path, megabytes: int) -> Path:
    """A zip of one ``megabytes`` MB member of zeros (compresses ~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("0001-0001.roi", b"\0" * (megabytes * 2**20))
    return path


def square(x: float, y: float, s: float, cls=None, kind: str = "detection") -> dict:
    """A QuPath GeoJSON feature: an ``s`` px square at ``(x, y)``."""
    ring = [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]
    props: dict = {"objectType": kind}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [255, 0, 0]}
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": props,
    }


def geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def catalog_entry(id_: str, local: dict, classes=None, **kw) -> dict:
    """test_layouts' catalog entry, for an H&E breast dataset unless ``kw`` says otherwise."""
    from test_layouts import _entry

    return _entry(id_, local, classes, **{"stain": ["H&E"], "organs": ["breast"], **kw})


def write_catalog(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"datasets": entries}, sort_keys=False))
    return path


def toy_instances(k: int, size: int = 48) -> np.ndarray:
    """A label image with ``k % 3 + 2`` square nuclei."""
    lab = np.zeros((size, size), np.int32)
    for i in range(k % 3 + 2):
        r, c = 4 + (i // 3) * 14, 4 + (i % 3) * 14
        lab[r : r + 9, c : c + 9] = i + 1
    return lab
