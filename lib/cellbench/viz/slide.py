"""Whole-slide images for the app: which files under a folder open (and whether they are
tissue or a test pattern), and the QuPath objects to overlay on them (QuPath GeoJSON:
annotations, a QuPath export, ``predict`` output), in level-0 pixels. The deep-zoom viewer
itself is :mod:`cellbench.app.tiles` (tiles through :func:`cellbench.data.wsi.open_slide`,
the same reader as the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellbench.core.errors import CellbenchError

#: Slide file suffixes listed by :func:`list_slides`.
SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".qptiff", ".dcm", ".vms", ".bif")
#: A thumbnail with fewer distinct colours than this is a synthetic test pattern.
MIN_COLOURS = 256


@dataclass
class SlideInfo:
    """What :func:`list_slides` found about one file."""

    path: Path
    kind: str  # "tissue", "test pattern" or "unreadable"
    dimensions: tuple[int, int] | None = None
    mpp: float | None = None
    levels: int = 0
    backend: str | None = None
    error: str | None = None


def probe(path: str | Path) -> SlideInfo:
    """Open a slide and classify it: ``tissue``, ``test pattern`` (a thumbnail of fewer than
    :data:`MIN_COLOURS` colours) or ``unreadable`` (the reason in ``error``)."""
    from cellbench.data.wsi import open_slide

    p = Path(path)
    try:
        with open_slide(p) as s:
            th = s.thumbnail(128)
            colours = len(np.unique(th.reshape(-1, th.shape[-1]), axis=0))
            kind = "tissue" if colours >= MIN_COLOURS else "test pattern"
            return SlideInfo(p, kind, s.dimensions, s.mpp, len(s.level_downsamples), s.backend)
    except CellbenchError as e:
        return SlideInfo(p, "unreadable", error=str(e))


def list_slides(folder: str | Path) -> list[SlideInfo]:
    """Every slide file directly under ``folder``: tissue first, then test patterns, then
    unreadable files; by name within each."""
    d = Path(folder)
    if not d.is_dir():
        return []
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    order = {"tissue": 0, "test pattern": 1, "unreadable": 2}
    return sorted((probe(p) for p in files), key=lambda i: (order[i.kind], i.path.name))


def read_objects(
    source: str | Path | bytes, name: str = "objects.geojson", skipped: list[str] | None = None
) -> list:
    """QuPath objects of a GeoJSON file (``.geojson`` or ``.geojson.gz``) or its bytes (any
    QuPath version), level-0 pixels. Features that cannot be read are skipped, each named in
    ``skipped`` (a viewer shows what it can and says what it left out)."""
    from cellbench.core.safety import gunzip, parse_json, read_json
    from cellbench.data.readers.qupath_geojson import parse_qupath_features

    bad = [] if skipped is None else skipped
    if isinstance(source, bytes):
        data = gunzip(source, Path(name)) if name.lower().endswith(".gz") else source
        return parse_qupath_features(parse_json(data, name, constants=True), name, bad)
    return parse_qupath_features(read_json(Path(source), "GeoJSON", constants=True), source, bad)
