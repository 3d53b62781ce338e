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

import numpy as np
import yaml

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic
from cellbench.core.errors import CatalogError, DataError
from cellbench.core.safety import check_name, check_pixels, literal_matches, load_yaml, read_text

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


def _import_qupath(
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
    overlapping: bool = False,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """Add one image with its QuPath objects to a user dataset (see module docstring).

    ``geojson``: QuPath GeoJSON (any version, ``.geojson.gz`` too; other tools' prediction
    files go through :func:`cellbench.qupath.geojson.import_prediction`, which converts them).
    ``skip_bad``: GeoJSON features that cannot be read are skipped and named in the summary
    (``skipped``) instead of refusing the file.
    ``mpp`` is microns per pixel of the image (None: unknown). ``overlapping`` (new datasets;
    whole cells in cytology): objects that overlap stay separate objects instead of the later
    one taking the shared pixels. Returns a summary: dataset,
    sample id, object counts, the class mapping, names guessed to the root, catalog path.
    """
    from cellbench.data.catalog import load_catalog, parse_catalog
    from cellbench.data.classes import load_hierarchy
    from cellbench.data.imageio import image_size
    from cellbench.data.readers import get_reader
    from cellbench.data.readers.qupath_geojson import check_objects_inside

    geojson, image = Path(geojson), Path(image)
    if not isinstance(dataset_id, str) or not re.fullmatch(
        r"[a-z0-9][a-z0-9_\-]{0,99}", dataset_id
    ):
        raise CatalogError(
            config.user_catalog_path(),
            f"invalid dataset id {dataset_id!r}: lower-case letters, digits, '_' and '-'",
        )
    if not image.stem or image.name.startswith("."):
        raise DataError(image, "the image name gives the sample id: it must not start with '.'")
    width, height = image_size(image)  # raises DataError naming the image when unreadable
    check_pixels(width, height, image)  # before anything is copied
    skipped: list[str] = []
    objs, source = _import_objects(geojson, (height, width), skipped if skip_bad else None)
    objs = [o for o in objs if o.object_type in object_types]
    shapes = [(o.nucleus if o.nucleus is not None else o.geometry).geom_type for o in objs]
    n_poly = sum(s in SEGMENTABLE for s in shapes)
    n_point = sum(s in ("Point", "MultiPoint") for s in shapes)
    if not n_poly and not n_point:
        raise DataError(
            geojson, f"no polygon or point objects of type {', '.join(object_types)} to import"
        )
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
                    **({"overlapping": True} if overlapping else {}),
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
        written.append(write_bytes_atomic(ann_dst, source))
        reader = get_reader(new, dataset_id)
        rec = next(r for r in reader.records() if r.sample_id == stem)
        sample = reader.load(rec)
        notes = _import_notes(objs, sample, n_poly)
        if notes:  # stored with the sample in its catalog entry, said in the summary
            entry["local"]["options"].setdefault("import_notes", {})[stem] = notes
            text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
            parse_catalog(text, cat_path, root)
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
        "skipped": skipped,
        "notes": notes,
        "catalog": str(cat_path),
        "location": str(folder),
    }


def _import_objects(path: Path, shape: tuple[int, int], skipped: list[str] | None):
    """``(QuPath objects, the GeoJSON bytes to store)``: a plain ``.geojson`` is stored as it
    is; a compressed one, or one with skipped features, as the canonical GeoJSON of its
    objects. (Other tools' files come here converted: :func:`cellbench.qupath.geojson.
    import_prediction`.)"""
    import json

    from cellbench.data.readers.qupath_geojson import read_qupath_geojson

    low = path.name.lower()
    if not (low.endswith(".geojson") or low.endswith(".geojson.gz") or low.endswith(".json")):
        raise DataError(
            path,
            "not QuPath GeoJSON (.geojson, .geojson.gz); other tools' files: "
            "`cellbench qupath import` converts them",
        )
    objs = read_qupath_geojson(path, skipped)
    if low.endswith(".geojson") and not skipped:
        return objs, path.read_bytes()
    feats = [_feature_of(o) for o in objs]
    data = json.dumps({"type": "FeatureCollection", "features": feats}, allow_nan=False)
    return objs, data.encode("utf-8")


def _import_notes(objs, sample, n_poly: int) -> list[str]:
    """What the import changed or could not keep, one line each (never silently): features
    identical to an earlier one (they become one object), self-intersecting polygons (kept as
    drawn), polygons covering no pixel centre (left out)."""
    notes = []
    seen: set[tuple] = set()
    dup = 0
    for o in objs:
        key = (
            o.object_type,
            o.class_name,
            o.geometry.wkb,
            None if o.nucleus is None else o.nucleus.wkb,
        )
        dup += key in seen
        seen.add(key)
    if dup:
        notes.append(f"{dup} feature(s) identical to an earlier one: merged into it")
    bad = sum(
        1
        for o in objs
        if (o.nucleus or o.geometry).geom_type in SEGMENTABLE
        and not (o.nucleus or o.geometry).is_valid
    )
    if bad:
        notes.append(f"{bad} self-intersecting polygon(s) (e.g. a bow-tie): kept as drawn")
    kept = 0
    if sample.objects is not None:
        kept = len(sample.objects)
    elif sample.instances is not None:
        kept = int(len(np.unique(sample.instances[sample.instances > 0])))
    lost = n_poly - dup - kept
    if lost > 0:
        notes.append(f"{lost} polygon(s) cover no pixel centre (smaller than a pixel): left out")
    return notes


def _feature_of(o) -> dict[str, Any]:
    """A QuPath object as a canonical GeoJSON feature (QuPath 0.4+)."""
    from shapely.geometry import mapping

    props: dict[str, Any] = {"objectType": o.object_type, "isLocked": o.locked}
    if o.class_name:
        props["classification"] = {"name": o.class_name, "color": list(o.color or (0, 200, 83))}
    if o.measurements:
        props["measurements"] = dict(o.measurements)
    if o.nucleus is not None:
        props["nucleusGeometry"] = mapping(o.nucleus)
    if o.name:
        props["name"] = o.name
    return {"type": "Feature", "geometry": mapping(o.geometry), "properties": props}


MASK_KINDS = ("instance", "binary", "class")


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML/JSON mapping, or a two-column CSV/TSV (``key,value``), from a user's file."""
    text = read_text(path, what)  # a clear error for a missing, unreadable or huge file
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        out = {}
        for k, line in enumerate(text.splitlines()):
            if not line.strip() or line.startswith("#"):
                continue
            parts = [x.strip() for x in line.split(sep)]
            if len(parts) != 2:
                raise DataError(path, f"line {k + 1}: expected two columns ({what})")
            out[parts[0]] = parts[1]
        return out
    doc = load_yaml(text, path, DataError)
    if not isinstance(doc, dict):
        raise DataError(path, f"expected a mapping ({what})")
    return doc


def check_pair(image: Path, label: Path, kind: str = "instance", class_values=None) -> str | None:
    """Why an image / label-mask pair cannot be added (None: it can)."""
    from cellbench.data.imageio import image_size, read_label_array

    if not label.is_file():
        return f"no label file {label.name}"
    try:
        w, h = image_size(image)
        check_pixels(w, h, image)
    except DataError as e:
        return f"image unreadable: {e}"
    try:
        arr = read_label_array(label)
    except DataError as e:
        return f"labels unreadable: {e}"
    if arr.dtype.kind == "f":
        return f"float labels ({arr.dtype}): save integer ids"
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        return f"labels are not one 2-D map (shape {arr.shape})"
    if arr.dtype.kind not in "iub" or (arr.size and arr.min() < 0):
        return f"labels must be non-negative integers (dtype {arr.dtype})"
    if arr.shape != (h, w):
        return f"sizes differ: labels {arr.shape[1]}x{arr.shape[0]}, image {w}x{h} px"
    if kind == "class":
        unknown = sorted(set(np.unique(arr[arr > 0]).tolist()) - set(class_values or {}))
        if unknown:
            return f"labels have pixel value(s) {unknown[:5]} without a class"
    return None


def _add_dataset(
    dataset_id: str,
    images: str,
    labels: str,
    *,
    kind: str = "instance",
    classes_file: str | Path | None = None,
    split_from: str | Path | None = None,
    mpp: float | None = None,
    stain: str = "H&E",
    organ: str | None = None,
    modality: str = "brightfield",
    name: str | None = None,
    mpp_from: str | Path | None = None,
) -> dict[str, Any]:
    """Add a folder of images with label masks to the user catalog (``datasets add``).

    ``images`` is a glob of image files; ``labels`` the label mask of each, with ``{stem}``
    for the image's name without its suffix (``masks/{stem}.tif``). ``kind``: ``instance``
    (instance maps), ``binary`` or ``class`` (pixel values -> class names from
    ``classes_file``, YAML/JSON/CSV ``value: name``); see
    :mod:`cellbench.data.readers.label_tiff`. ``split_from``: ``sample: split`` (YAML/JSON/CSV).
    ``mpp`` in microns per pixel, for every image; per image, ``mpp_from`` (YAML/JSON/CSV
    ``image stem: mpp``) or else the image's own header (:func:`cellbench.data.imageio.image_mpp`:
    OME, Aperio, ImageJ, TIFF centimetre resolution) takes precedence (stored as the reader
    option ``mpp_per_image`` where it differs from ``mpp``).

    Every pair is checked (:func:`check_pair`); bad pairs are left out and reported, the good
    ones are copied to ``$CELLBENCH_HOME/user_data/<id>/`` and the entry written to the user
    catalog last, after the new dataset reads back; a failure leaves nothing behind. Returns
    ``{dataset, added, bad: [(file, reason)], catalog, location}``.
    """
    import glob as globmod
    import tempfile

    from cellbench.data.catalog import load_catalog, parse_catalog
    from cellbench.data.classes import load_hierarchy
    from cellbench.data.readers import get_reader

    cat_path = config.user_catalog_path()
    if not isinstance(dataset_id, str) or not re.fullmatch(
        r"[a-z0-9][a-z0-9_\-]{0,99}", dataset_id
    ):
        raise CatalogError(
            cat_path, f"invalid dataset id {dataset_id!r}: lower-case letters, digits, '_' and '-'"
        )
    if kind not in MASK_KINDS:
        raise CatalogError(cat_path, f"unknown mask kind '{kind}' ({', '.join(MASK_KINDS)})")
    if "{stem}" not in labels:
        raise CatalogError(cat_path, f"--labels {labels!r} must contain {{stem}}")
    main = load_catalog(user=False)
    if dataset_id in main.ids:
        raise CatalogError(main.path, f"dataset '{dataset_id}' is a catalog dataset; pick a new id")
    doc = _read_user_catalog()
    if any(d.get("id") == dataset_id for d in doc["datasets"]):
        raise CatalogError(cat_path, f"dataset '{dataset_id}' exists; remove it first")

    tree = load_hierarchy()
    if kind == "class":
        if classes_file is None:
            raise CatalogError(cat_path, "class masks need --classes FILE (pixel value: name)")
        raw = _read_mapping(Path(classes_file), "pixel value: class name")
        try:
            values = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise DataError(Path(classes_file), "keys must be integer pixel values") from None
        if not values or 0 in values:
            raise DataError(Path(classes_file), "give classes for pixel values > 0 (0: background)")
        names = list(dict.fromkeys(values.values()))
        classes = [
            {"id": k + 1, "name": n, "nodes": [_node_for(n, {}, tree)[0]]}
            for k, n in enumerate(names)
        ]
        class_values = {v: names.index(n) + 1 for v, n in values.items()}
    else:
        classes = [{"id": 1, "name": "nucleus", "nodes": ["nucleus"]}]
        class_values = None
    split_map = {}
    if split_from is not None:
        split_map = {
            str(k): str(v) for k, v in _read_mapping(Path(split_from), "sample: split").items()
        }

    files = sorted(Path(p) for p in globmod.glob(images) if Path(p).is_file())
    if not files:
        raise DataError(Path(images), "no image matches this pattern")
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise DataError(Path(images), f"two images share the name {dup[0]!r}: names are sample ids")
    good, bad = [], []
    for img in files:
        if img.name.startswith("."):
            bad.append((str(img), "hidden file name"))
            continue
        lab = Path(labels.replace("{stem}", img.stem))
        why = check_pair(img, lab, kind, class_values)
        if why is None:
            good.append((img, lab))
        else:  # name the file the problem is in
            bad.append((str(img if why.startswith("image") else lab), why))
    if not good:
        why = "; ".join(f"{Path(f).name}: {r}" for f, r in bad[:3])
        raise DataError(Path(images), f"no usable image / label pair ({len(bad)} left out: {why})")
    per_image = _per_image_mpp([img for img, _ in good], mpp, mpp_from)

    entry = {
        "id": dataset_id,
        "name": name or dataset_id,
        "citation": "user data added with `cellbench datasets add`",
        "license": "user data",
        "url": "",
        "tasks": ["instance_segmentation", *(["classification"] if kind == "class" else [])],
        "stain": [stain],
        "modality": modality,
        "organs": [organ] if organ else [],
        "mpp": mpp,
        "classes": classes,
        "obtain": "added with `cellbench datasets add`",
        "local": {
            "format": "label_tiff",
            "location": dataset_id,
            "options": {
                "images": "images/*",
                "masks": "labels/{stem}",
                "kind": kind,
                **({"class_values": class_values} if class_values else {}),
                **({"split_map": split_map} if split_map else {}),
                **({"mpp_per_image": per_image} if per_image else {}),
            },
        },
    }
    root = config.user_data_root()
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dataset_id}-", dir=root))
    try:
        suffixes = {lab.suffix.lower() for _, lab in good}
        if len(suffixes) > 1:
            raise DataError(Path(labels), f"label files of several types: {sorted(suffixes)}")
        entry["local"]["options"]["masks"] = "labels/{stem}" + suffixes.pop()
        for img, lab in good:
            for src, dst in (
                (img, stage / dataset_id / "images" / img.name),
                (lab, stage / dataset_id / "labels" / f"{img.stem}{lab.suffix.lower()}"),
            ):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        doc["datasets"].append(entry)
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        new = parse_catalog(text, cat_path, stage)  # validates the entry
        recs = get_reader(new, dataset_id).records()  # and that the copy reads back
        get_reader(new, dataset_id).load(recs[0])
        (stage / dataset_id).rename(root / dataset_id)
        try:
            write_bytes_atomic(cat_path, text.encode("utf-8"))  # last: the dataset exists
        except BaseException:
            shutil.rmtree(root / dataset_id, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {
        "dataset": dataset_id,
        "added": len(good),
        "bad": bad,
        "catalog": str(cat_path),
        "location": str(root / dataset_id),
    }


def _per_image_mpp(images: list[Path], mpp: float | None, mpp_from) -> dict[str, float]:
    """``{stem: mpp}`` of the images whose mpp differs from the dataset's ``mpp``: from the
    ``mpp_from`` table first, else from the image's header. A table naming no image, or a value
    that is not a positive number, raises naming the table."""
    from cellbench.data.imageio import image_mpp

    table: dict[str, float] = {}
    if mpp_from is not None:
        src = Path(mpp_from)
        raw = _read_mapping(src, "image stem: mpp")
        head = next(iter(raw.items()), None)
        if head and str(head[1]).strip().lower() in ("mpp", "microns_per_pixel", "um/px"):
            raw.pop(head[0])  # a CSV header row
        stems = {i.stem for i in images}
        for k, v in raw.items():
            try:
                val = float(v)
            except (TypeError, ValueError):
                raise DataError(src, f"mpp of '{k}' is not a number: {v!r}") from None
            if not 0 < val < 1e3:
                raise DataError(src, f"mpp of '{k}' must be a positive number of µm/px")
            table[str(k)] = val
        unknown = sorted(set(table) - stems)
        if unknown:
            raise DataError(src, f"names no image of the dataset: {', '.join(unknown[:5])}")
    out = {}
    for img in images:
        v = table.get(img.stem)
        if v is None:
            v = image_mpp(img)
        if v is not None and (mpp is None or abs(v - mpp) > 1e-9):
            out[img.stem] = v
    return out


def _remove_dataset(dataset_id: str) -> dict[str, Any]:
    """Remove a user dataset: its catalog entry (written first) and its copied files."""
    cat_path = config.user_catalog_path()
    doc = _read_user_catalog()
    keep = [d for d in doc["datasets"] if d.get("id") != dataset_id]
    if len(keep) == len(doc["datasets"]):
        ids = ", ".join(d.get("id", "?") for d in doc["datasets"]) or "none"
        raise CatalogError(cat_path, f"no user dataset '{dataset_id}' (user datasets: {ids})")
    check_name(dataset_id, "dataset id", CatalogError)
    doc["datasets"] = keep
    write_bytes_atomic(cat_path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode())
    folder = config.user_data_root() / dataset_id
    if folder.is_dir():
        trash = folder.with_name(f".{dataset_id}.removed")
        shutil.rmtree(trash, ignore_errors=True)
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    return {"dataset": dataset_id, "catalog": str(cat_path), "removed": str(folder)}


def _locked(fn):
    """``fn`` under the dataset's lock (:mod:`cellbench.core.locks`); a workspace that cannot
    be written is one line naming the file."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        from cellbench.core.locks import dataset_lock

        dataset_id = kw.get("dataset_id", args[2] if fn is _import_qupath else args[0])
        with dataset_lock(str(dataset_id)):
            try:
                return fn(*args, **kw)
            except OSError as e:
                raise CatalogError(
                    Path(getattr(e, "filename", None) or config.home()),
                    f"cannot write to the workspace ({e.strerror or e}); nothing was "
                    "half-written: fix permissions or free space, then run it again",
                ) from None

    return wrapper


import_qupath = _locked(_import_qupath)
add_dataset = _locked(_add_dataset)
remove_dataset = _locked(_remove_dataset)
