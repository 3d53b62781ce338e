"""QuPath projects: read ``project.qpproj`` and ``classifiers/classes.json``; write a project.

Project files (``shared/DESIGN.md`` §7) are JSON: ``project.qpproj`` lists image entries
(``entryID``, ``imageName``, ``randomizedName``, ``serverBuilder`` with the image URI and its
metadata: size, pixel calibration), ``classifiers/classes.json`` the path classes with packed
ARGB colours. Object data (``data/<id>/data.qpdata``) is Java-serialised: only QuPath (or paquo,
which drives QuPath) reads or writes it.

Writing, two backends (chosen by :func:`write_project`):

``files`` (always available)
    a valid ``project.qpproj`` with one entry per image, ``classifiers/classes.json``, one
    GeoJSON per image under ``objects/`` and ``scripts/import_cellbench.groovy``; running that
    script in QuPath (*Run for project*) adds each image's objects to it;
``paquo`` (where QuPath is installed and paquo finds it)
    the objects are written straight into the project's images through paquo.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from cellbench.core.atomic import write_bytes_atomic, write_json_atomic
from cellbench.core.errors import DataError
from cellbench.viz.overlay import rgb

QUPATH_VERSION = "0.5.1"


@dataclass
class ProjectImage:
    """One image entry of a project (sizes in pixels, mpp in microns per pixel)."""

    entry_id: int
    name: str
    uri: str
    path: Path | None
    width: int | None
    height: int | None
    mpp: float | None
    randomized_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Project:
    """A QuPath project: its file, version, images and path classes (name -> rgb)."""

    path: Path
    version: str | None
    images: list[ProjectImage]
    classes: dict[str, tuple[int, int, int]]


def argb_to_rgb(v: int) -> tuple[int, int, int]:
    """QuPath's packed (signed 32-bit) ARGB colour as ``(r, g, b)``."""
    v &= 0xFFFFFFFF
    return ((v >> 16) & 255, (v >> 8) & 255, v & 255)


def rgb_to_argb(color) -> int:
    """``(r, g, b)`` or ``#rrggbb`` as QuPath's packed signed ARGB int (opaque)."""
    r, g, b = rgb(color)
    v = (255 << 24) | (r << 16) | (g << 8) | b
    return v - (1 << 32)


def _read_json(path: Path) -> Any:
    from cellbench.core.safety import read_json

    return read_json(path)


def _local_path(uri: str, project_dir: Path, name: str) -> Path | None:
    """The image file: the URI's path, else ``<project>/images/<name>`` (a moved project)."""
    p = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else None
    if p is not None and p.is_file():
        return p
    for cand in (project_dir / "images" / name, project_dir.parent / name):
        if cand.is_file():
            return cand
    return None


def read_project(path: str | Path) -> Project:
    """Read a project folder (or its ``project.qpproj``) and its path classes."""
    p = Path(path)
    qpproj = p / "project.qpproj" if p.is_dir() else p
    doc = _read_json(qpproj)
    if not isinstance(doc, dict) or not isinstance(doc.get("images", []), list):
        raise DataError(qpproj, "not a QuPath project: expected a mapping with 'images'")
    images = []
    for k, e in enumerate(doc.get("images", [])):
        sb = e.get("serverBuilder") or {}
        meta = sb.get("metadata") or {}
        cal = (meta.get("pixelCalibration") or {}).get("pixelWidth") or {}
        mpp = cal.get("value") if cal.get("unit") in ("µm", "um", "\u00b5m") else None
        name = e.get("imageName") or meta.get("name") or f"image {k}"
        uri = sb.get("uri") or ""
        images.append(
            ProjectImage(
                entry_id=int(e.get("entryID", k + 1)),
                name=name,
                uri=uri,
                path=_local_path(uri, qpproj.parent, name),
                width=meta.get("width"),
                height=meta.get("height"),
                mpp=mpp,
                randomized_name=e.get("randomizedName"),
                metadata=dict(e.get("metadata") or {}),
            )
        )
    classes: dict[str, tuple[int, int, int]] = {}
    cj = qpproj.parent / "classifiers" / "classes.json"
    if cj.is_file():
        cdoc = _read_json(cj)
        for c in (cdoc or {}).get("pathClasses", []):
            if isinstance(c, dict) and "name" in c:
                classes[c["name"]] = argb_to_rgb(int(c.get("color", 0)))
    return Project(qpproj, doc.get("version"), images, classes)


GROOVY = """// cellbench: import each image's objects (objects/<image name>.geojson).
// In QuPath: Automate > Project scripts (or open this file) > Run for project.
import qupath.lib.io.PathIO

def name = getProjectEntry().getImageName()
def file = new File(buildFilePath(PROJECT_BASE_DIR, 'objects', name + '.geojson'))
if (!file.exists()) {
    print 'cellbench: no objects for ' + name
    return
}
def objects = PathIO.readObjects(file.toPath())
addObjects(objects)
fireHierarchyUpdate()
print 'cellbench: imported ' + objects.size() + ' objects into ' + name
"""


def _entry(k: int, image: Path, width: int, height: int, mpp: float | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": image.name,
        "width": width,
        "height": height,
        "levels": [{"downsample": 1.0, "width": width, "height": height}],
    }
    if mpp:
        meta["pixelCalibration"] = {
            "pixelWidth": {"value": mpp, "unit": "µm"},
            "pixelHeight": {"value": mpp, "unit": "µm"},
        }
    return {
        "serverBuilder": {
            "builderType": "uri",
            "providerClassName": "qupath.lib.images.servers.bioformats.BioFormatsServerBuilder",
            "uri": image.resolve().as_uri(),
            "args": [],
            "metadata": meta,
        },
        "entryID": k,
        "randomizedName": str(uuid.uuid4()),
        "imageName": image.name,
        "metadata": {},
    }


def paquo_reason() -> str | None:
    """None when paquo can drive an installed QuPath, else why not (for messages and skips)."""
    try:
        from paquo.jpype_backend import find_qupath

        find_qupath()
    except Exception as e:  # noqa: BLE001 - any failure means: not usable here
        return f"paquo cannot use QuPath here ({type(e).__name__}: {e})"
    return None


def write_project(
    folder: str | Path,
    images: list[dict[str, Any]],
    classes: dict[str, Any],
    backend: str = "auto",
) -> str:
    """Write a QuPath project for images and their objects; return the backend used.

    ``images``: ``{"path", "width", "height", "mpp" (optional), "features"}`` each (features =
    QuPath GeoJSON features, e.g. from :func:`cellbench.qupath.geojson.sample_features`);
    ``classes``: ``{name: colour}``. ``backend``: ``auto`` (paquo where QuPath is installed,
    else files), ``files`` or ``paquo``. An existing project folder is refused (nothing is
    overwritten).
    """
    from cellbench.qupath.geojson import write_geojson

    out = Path(folder)
    if (out / "project.qpproj").exists():
        raise DataError(out, "a QuPath project already exists here; choose another folder")
    reason = paquo_reason()
    if backend == "auto":
        backend = "files" if reason else "paquo"
    if backend == "paquo":
        if reason:
            raise DataError(out, reason)
        _write_paquo(out, images, classes)
        return "paquo"
    names = [Path(i["path"]).name for i in images]
    if len(set(names)) != len(names):
        raise DataError(out, "two images with the same file name cannot share a project")
    doc = {
        "version": QUPATH_VERSION,
        "createTimestamp": 0,
        "modifyTimestamp": 0,
        "uri": (out.resolve() / "project.qpproj").as_uri(),
        "lastID": len(images),
        "images": [
            _entry(k + 1, Path(i["path"]), int(i["width"]), int(i["height"]), i.get("mpp"))
            for k, i in enumerate(images)
        ],
    }
    for i in images:
        write_geojson(i.get("features") or [], out / "objects" / f"{Path(i['path']).name}.geojson")
    write_json_atomic(
        out / "classifiers" / "classes.json",
        {"pathClasses": [{"name": n, "color": rgb_to_argb(c)} for n, c in classes.items()]},
    )
    write_bytes_atomic(out / "scripts" / "import_cellbench.groovy", GROOVY.encode("utf-8"))
    write_json_atomic(out / "project.qpproj", doc, indent=2)  # last: marks the project whole
    return "files"


def _write_paquo(out: Path, images: list[dict[str, Any]], classes: dict[str, Any]) -> None:
    """Objects straight into a new project through paquo (needs QuPath; untested here)."""
    from paquo.classes import QuPathPathClass
    from paquo.projects import QuPathProject
    from shapely.geometry import shape

    with QuPathProject(out, mode="x") as qp:
        qp.path_classes = [
            QuPathPathClass(n, color="#{:02x}{:02x}{:02x}".format(*rgb(c)))
            for n, c in classes.items()
        ]
        by_name = {c.name: c for c in qp.path_classes}
        for i in images:
            entry = qp.add_image(str(i["path"]))
            for f in i.get("features") or []:
                cls = (f["properties"].get("classification") or {}).get("name")
                entry.hierarchy.add_detection(roi=shape(f["geometry"]), path_class=by_name.get(cls))


def export_samples(
    catalog,
    dataset: str,
    records,
    out: str | Path,
    what: str = "gt",
    run: dict[str, Any] | None = None,
    store=None,
    backend: str = "auto",
) -> tuple[int, str]:
    """A QuPath project of ``records`` (sample records of ``dataset``) with their objects:
    ground truth, a run's prediction or its errors (``what`` = ``gt`` | ``pred`` |
    ``errors``). Images are referenced where they are (their own files), classes are the
    dataset's (or TP / FP / FN for errors). Returns the number of images and the backend."""
    from cellbench.qupath.geojson import sample_features
    from cellbench.viz.overlay import ERROR_COLORS, PALETTE

    images = []
    for r in records:
        path = r.files.get("image")
        if path is None:
            raise DataError(Path(out), f"sample '{r.sample_id}' has no image file to reference")
        images.append(
            {
                "path": Path(path).resolve(),
                "width": r.meta.get("width"),
                "height": r.meta.get("height"),
                "mpp": r.meta.get("mpp"),
                "features": sample_features(catalog, dataset, r.sample_id, what, run, store),
            }
        )
    ds = catalog.get(dataset)
    classes = {c.name: c.color or PALETTE[k % len(PALETTE)] for k, c in enumerate(ds.classes)}
    if what == "errors":
        classes = dict(ERROR_COLORS)
    return len(images), write_project(out, images, classes, backend)
