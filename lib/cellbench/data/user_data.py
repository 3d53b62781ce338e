"""User datasets: QuPath GeoJSON + image pairs imported into a user catalog.

``cellbench qupath import FILE.geojson --image IMG --dataset-id ID`` (and the app's QuPath page)
call :func:`import_qupath`, which

1. reads the GeoJSON (every QuPath version the reader accepts) and the image header, so a
   broken file is refused before anything is written (the error names the file);
2. maps the file's classification names onto the class hierarchy: ``class_nodes`` given by the
   user first, then a name equal to a hierarchy node (``Lymphocyte`` -> ``lymphocyte``), then
   QuPath's default classes (:data:`QUPATH_DEFAULTS`: Tumor -> neoplastic, Stroma ->
   connective, Immune cells -> inflammatory, Necrosis -> dead, Other -> other); any other name
   maps to the root ``nucleus`` and is reported so the user can name its node; objects without a
   class are the class ``nucleus``;
3. copies both files under ``$CELLBENCH_HOME/user_data/<ID>/`` (``images/``,
   ``annotations/<stem>.geojson``), checks that the sample reads back through the catalog
   reader, and only then writes the dataset entry into ``$CELLBENCH_HOME/user_catalog.yaml``
   (atomically). A second import into the same ID adds a sample and any new classes.

The user catalog is merged into the catalog everywhere
(:func:`cellbench.data.catalog.load_catalog`), so imported samples are browsed, evaluated and
exported like any other dataset.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic
from cellbench.core.errors import CatalogError, DataError
from cellbench.core.safety import check_pixels, literal_matches, load_yaml

#: QuPath's built-in classification names and the hierarchy node each stands for.
QUPATH_DEFAULTS: dict[str, str] = {
    "tumor": "neoplastic",
    "tumour": "neoplastic",
    "stroma": "connective",
    "immune cells": "inflammatory",
    "necrosis": "dead",
    "other": "other",
}
SEGMENTABLE = ("Polygon", "MultiPolygon")


def _node_for(name: str, class_nodes: dict[str, str], tree) -> tuple[str, bool]:
    """``(node, guessed_root)`` for a QuPath class name."""
    if name in class_nodes:
        node = class_nodes[name]
        if node not in tree:
            raise CatalogError(
                config.user_catalog_path(), f"class '{name}': unknown hierarchy node '{node}'"
            )
        return node, False
    key = name.strip().lower()
    for cand in (key.replace(" ", "_").replace("-", "_"), QUPATH_DEFAULTS.get(key)):
        if cand and cand in tree:
            return cand, False
    return "nucleus", True


def _read_user_catalog() -> dict[str, Any]:
    p = config.user_catalog_path()
    if not p.is_file():
        return {"datasets": []}
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(p, f"cannot read: {e}") from None
    doc = load_yaml(text, p, CatalogError) or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list):
        raise CatalogError(p, "expected a mapping with a 'datasets' list at the top level")
    return doc


def import_qupath(
    geojson: str | Path,
    image: str | Path,
    dataset_id: str,
    *,
    name: str | None = None,
    mpp: float | None = None,
    stain: str = "H&E",
    organ: str | None = None,
    modality: str = "brightfield",
    split: str | None = None,
    class_nodes: dict[str, str] | None = None,
    object_types: tuple[str, ...] = ("detection", "cell", "annotation"),
    replace: bool = False,
) -> dict[str, Any]:
    """Add one image with its QuPath objects to a user dataset (see module docstring).

    ``mpp`` is microns per pixel of the image (None: unknown). Returns a summary: dataset,
    sample id, object counts, the class mapping, names guessed to the root, catalog path.
    """
    from cellbench.data.catalog import load_catalog, parse_catalog
    from cellbench.data.classes import load_hierarchy
    from cellbench.data.imageio import image_size
    from cellbench.data.readers import get_reader
    from cellbench.data.readers.qupath_geojson import check_objects_inside, read_qupath_geojson

    geojson, image = Path(geojson), Path(image)
    if not isinstance(dataset_id, str) or not re.fullmatch(
        r"[a-z0-9][a-z0-9_\-]{0,99}", dataset_id
    ):
        raise CatalogError(
            config.user_catalog_path(),
            f"invalid dataset id {dataset_id!r}: lower-case letters, digits, '_' and '-'",
        )
    objs = [o for o in read_qupath_geojson(geojson) if o.object_type in object_types]
    shapes = [(o.nucleus if o.nucleus is not None else o.geometry).geom_type for o in objs]
    n_poly = sum(s in SEGMENTABLE for s in shapes)
    n_point = sum(s in ("Point", "MultiPoint") for s in shapes)
    if not n_poly and not n_point:
        raise DataError(
            geojson, f"no polygon or point objects of type {', '.join(object_types)} to import"
        )
    if not image.stem or image.name.startswith("."):
        raise DataError(image, "the image name gives the sample id: it must not start with '.'")
    width, height = image_size(image)  # raises DataError naming the image when unreadable
    check_pixels(width, height, image)  # before anything is copied
    check_objects_inside(objs, width, height, geojson)

    main = load_catalog(user=False)
    if dataset_id in main.ids:
        raise CatalogError(main.path, f"dataset '{dataset_id}' is a catalog dataset; pick a new id")
    doc = _read_user_catalog()
    entry = next((d for d in doc["datasets"] if d.get("id") == dataset_id), None)
    if entry is not None and (entry.get("local") or {}).get("format") != "qupath_geojson":
        raise CatalogError(
            config.user_catalog_path(), f"dataset '{dataset_id}' is not a QuPath import"
        )

    tree = load_hierarchy()
    names = sorted({o.class_name for o in objs if o.class_name})
    mapping, guessed = {}, []
    for n in names:
        mapping[n], g = _node_for(n, class_nodes or {}, tree)
        if g:
            guessed.append(n)
    if entry is None:
        entry = {
            "id": dataset_id,
            "name": name or dataset_id,
            "citation": "user data imported from QuPath",
            "license": "user data",
            "url": "",
            "tasks": ["instance_segmentation"] if n_poly else ["detection"],
            "stain": [stain],
            "modality": modality,
            "organs": [organ] if organ else [],
            "mpp": mpp,
            "classes": [],
            "obtain": "imported with `cellbench qupath import`",
            "local": {
                "format": "qupath_geojson",
                "location": dataset_id,
                "options": {
                    "images": "images/*",
                    "annotations": "annotations/{stem}.geojson",
                    "object_types": list(object_types),
                    "split": split,
                },
            },
        }
        doc["datasets"].append(entry)
    known = {c["name"] for c in entry["classes"]}
    for n in names:
        if n not in known:
            nid = max([c["id"] for c in entry["classes"]], default=0) + 1
            entry["classes"].append({"id": nid, "name": n, "nodes": [mapping[n]]})
    if not entry["classes"]:
        entry["classes"].append({"id": 1, "name": "nucleus", "nodes": ["nucleus"]})

    root = config.user_data_root()
    folder = root / dataset_id
    stem = image.stem
    img_dst = folder / "images" / image.name
    ann_dst = folder / "annotations" / f"{stem}.geojson"
    clash = literal_matches(folder / "images", stem)  # a name is never a pattern
    if clash and not replace:
        raise DataError(clash[0], f"sample '{stem}' is already in '{dataset_id}' (use replace)")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    cat_path = config.user_catalog_path()
    new = parse_catalog(text, cat_path, root)  # validates the entry before anything is written
    # a replaced sample's files are set aside, not deleted, until the new one reads back
    old = [p for p in [*clash, ann_dst] if p.is_file()]
    aside = folder / ".replaced"
    if old:
        aside.mkdir(parents=True, exist_ok=True)
    kept = [p.rename(aside / f"{k}-{p.name}") for k, p in enumerate(old)]
    written: list[Path] = []
    try:
        written.append(write_bytes_atomic(img_dst, image.read_bytes()))
        written.append(write_bytes_atomic(ann_dst, geojson.read_bytes()))
        reader = get_reader(new, dataset_id)
        rec = next(r for r in reader.records() if r.sample_id == stem)
        sample = reader.load(rec)
        write_bytes_atomic(cat_path, text.encode("utf-8"))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        for p, k in zip(old, kept, strict=True):
            k.rename(p)
        shutil.rmtree(aside, ignore_errors=True)
        if not any((folder / "images").iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return {
        "dataset": dataset_id,
        "sample_id": stem,
        "n_objects": sample.n_objects,
        "polygons": n_poly,
        "points": n_point,
        "classes": mapping,
        "guessed_root": guessed,
        "catalog": str(cat_path),
        "location": str(folder),
    }
