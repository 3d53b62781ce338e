"""Dataset statistics tables as the seed papers print them, from the sample table and the
annotations.

- :func:`key_statistics`: seed 000 Table 1 (patients, WSIs, stains, age, sex, category and
  center, each "patients (slides)" where both are known).
- :func:`center_table`: per center the patients, slides, samples and annotated objects.
- :func:`category_table`: seed 000 Table 3 (per diagnostic category: slides, samples, objects,
  with a total).
- :func:`annotation_stats`: one pass over the annotations giving per-sample object counts and
  density, and per-object areas and classes; from it :func:`class_table` (objects per class and
  split, or per category x class), :func:`density_table` (seed 003 Table 1 ND: the mean number
  of annotated objects per 256 x 256 pixel patch) and :func:`area_table` (object area
  distributions in pixels and, where the sample's ``mpp`` is known, square microns).

Conventions: "objects" are the annotated nuclei / cells (instances, else points), counted per
sample as stored (a dataset kept as patches, like CoNSeP here, counts a nucleus cut by a patch
border once per patch, so its totals exceed the paper's per-tile counts); density is
per 256 x 256 **pixels** of the sample's image at its own resolution (seed 003's ND);
areas are pixel counts of instance masks (points have no area). Unknown metadata are counted
under ``unknown``, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from cellbench.data.catalog import Catalog
from cellbench.data.readers import get_reader
from cellbench.data.record_cache import records_of

#: Side of seed 003's density patch, pixels.
DENSITY_PATCH = 256
UNKNOWN = "unknown"


def _n_unique(col: str) -> pl.Expr:
    return pl.col(col).drop_nulls().n_unique()


def _label(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Utf8).fill_null(UNKNOWN)


def center_table(table: pl.DataFrame) -> pl.DataFrame:
    """Per center: ``center``, ``center_name``, ``patients``, ``slides``, ``samples``,
    ``objects`` (sum of ``n_objects``), sorted by samples (most first)."""
    return (
        table.with_columns(center=_label("center"))
        .group_by("center")
        .agg(
            center_name=pl.col("center_name").drop_nulls().first(),
            patients=_n_unique("patient_id"),
            slides=_n_unique("slide_id"),
            samples=pl.len(),
            objects=pl.col("n_objects").sum(),
        )
        .sort(["samples", "center"], descending=[True, False])
    )


def category_table(table: pl.DataFrame, by: str = "category") -> pl.DataFrame:
    """Seed 000 Table 3: per ``by`` value the slides, samples and objects, plus ``Total``."""
    per = (
        table.with_columns(_label(by).alias(by))
        .group_by(by)
        .agg(
            slides=_n_unique("slide_id"),
            samples=pl.len(),
            objects=pl.col("n_objects").sum(),
        )
        .sort(by)
    )
    total = pl.DataFrame(
        {
            by: ["Total"],
            "slides": [table["slide_id"].drop_nulls().n_unique()],
            "samples": [table.height],
            "objects": [table["n_objects"].sum()],
        },
        schema=per.schema,
    )
    return pl.concat([per, total])


def _counted(table: pl.DataFrame, col: str) -> str:
    """``value – patients (slides)`` items of one column, most first; ``value – N slides``
    (else ``N samples``) where the dataset records no patients (slides)."""
    per = (
        table.with_columns(_label(col).alias(col))
        .group_by(col)
        .agg(patients=_n_unique("patient_id"), slides=_n_unique("slide_id"), samples=pl.len())
        .sort(["patients", "slides", "samples", col], descending=[True, True, True, False])
    )
    has_p = table["patient_id"].drop_nulls().len() > 0
    has_s = table["slide_id"].drop_nulls().len() > 0

    def one(r) -> str:
        if has_p:
            return f"{r[col]} – {r['patients']} ({r['slides']})"
        if has_s:
            return f"{r[col]} – {r['slides']} slides"
        return f"{r[col]} – {r['samples']} samples"

    return "; ".join(one(r) for r in per.iter_rows(named=True))


def key_statistics(table: pl.DataFrame) -> pl.DataFrame:
    """Seed 000 Table 1: ``attribute`` / ``value`` rows for the samples of ``table``.

    Counts are "patients (slides)"; age and sex are per patient (the first value of each);
    a patient or slide id that is missing is not counted (samples still are); a dataset that
    records no patient ids says ``unknown`` rather than 0.
    """
    patients = (
        table.filter(pl.col("patient_id").is_not_null())
        .group_by("patient_id")
        .agg(pl.col("age").drop_nulls().first(), pl.col("sex").drop_nulls().first())
    )
    ages = patients["age"].drop_nulls()
    age = (
        f"Range – {ages.min()} to {ages.max()} years; Mean – {ages.mean():.0f} years; "
        f"Median – {ages.median():.0f} years (n = {len(ages)})"
        if len(ages)
        else UNKNOWN
    )
    sexes = patients["sex"].fill_null(UNKNOWN).value_counts().sort("sex")
    sex = "; ".join(f"{s} – {n}" for s, n in sexes.iter_rows()) or UNKNOWN
    rows = [
        ("Number of patients", str(patients.height) if patients.height else UNKNOWN),
        ("Number of slides (WSIs)", str(table["slide_id"].drop_nulls().n_unique())),
        ("Number of samples", str(table.height)),
        ("Annotated objects", str(table["n_objects"].sum())),
        ("Stain types", _counted(table, "stain")),
        ("Age", age),
        ("Sex", sex),
        ("Diagnosis", _diagnosis_row(table)),
        ("Category", _counted(table, "category")),
        ("Centers", _counted(table.with_columns(center=_center_label()), "center")),
    ]
    return pl.DataFrame(rows, schema={"attribute": pl.Utf8, "value": pl.Utf8}, orient="row")


#: Seed 000's oral-cytology categories as diagnoses (its Table 1: 197 non-cancerous patients
#: = category I 162 + II 35; 42 cancerous = III 24 + IV 18).
DIAGNOSIS = {"I": "Non cancerous", "II": "Non cancerous", "III": "Cancerous", "IV": "Cancerous"}


def _diagnosis_row(table: pl.DataFrame) -> str:
    """Seed 000 Table 1's Diagnosis row from the categories (I-II non-cancerous, III-IV
    cancerous; "Category III", "3" and "III" alike); unknown where no sample has one."""
    import re

    roman = {"1": "I", "2": "II", "3": "III", "4": "IV"}

    def diagnosis(c: str | None) -> str | None:
        if c is None:
            return None
        m = re.fullmatch(r"(?i)\s*(?:category\s+)?(IV|III|II|I|[1-4])\s*", str(c))
        return DIAGNOSIS.get(roman.get(m.group(1), m.group(1).upper())) if m else None

    d = table.with_columns(
        diagnosis=pl.col("category").map_elements(diagnosis, return_dtype=pl.Utf8)
    )
    if d["diagnosis"].drop_nulls().is_empty():
        return UNKNOWN
    return _counted(d.filter(pl.col("diagnosis").is_not_null()), "diagnosis")


def _center_label() -> pl.Expr:
    return (
        pl.when(pl.col("center_name").is_not_null())
        .then(pl.col("center_name"))
        .otherwise(pl.col("center"))
    )


# -- annotations --------------------------------------------------------------------------------


@dataclass
class AnnotationStats:
    """What one pass over a dataset's annotations gives.

    Attributes
    ----------
    samples
        One row per sample: ``sample_id``, ``split``, ``category``, ``width``, ``height``,
        ``mpp``, ``objects``, ``density`` (objects per 256 x 256 px).
    objects
        One row per annotated object: ``sample_id``, ``split``, ``category``, ``class``,
        ``area_px`` (null for points) and ``area_um2`` (null without mpp).
    """

    dataset: str
    samples: pl.DataFrame
    objects: pl.DataFrame


def annotation_stats(
    catalog: Catalog,
    dataset: str,
    split: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnnotationStats:
    """Read every sample's annotations once (see :class:`AnnotationStats`)."""
    ds = catalog.get(dataset)
    names = {c.id: c.name for c in ds.classes}
    reader = get_reader(catalog, dataset)
    recs = [r for r in records_of(reader) if split is None or r.split == split]
    srows, orows = [], {k: [] for k in ("sample_id", "class", "area_px")}
    for k, rec in enumerate(recs):
        s = reader.load(rec)
        h, w = (
            (s.image.shape[:2]) if s.image is not None else (rec.meta["height"], rec.meta["width"])
        )
        if s.objects is not None:  # overlapping objects: each its own area
            ids, obj_area = s.objects.ids, s.objects.area
        elif s.instances is not None:
            areas = np.bincount(s.instances.ravel())
            ids = np.nonzero(areas)[0]
            ids = ids[ids > 0]
            obj_area = areas[ids]
        if s.truth is not None:
            cls = [names.get((s.classes or {}).get(int(i))) for i in ids]
            if len(names) == 1:
                cls = [c or next(iter(names.values())) for c in cls]
            orows["sample_id"] += [rec.sample_id] * len(ids)
            orows["class"] += [c or UNKNOWN for c in cls]
            orows["area_px"] += obj_area.astype(float).tolist()
            n = len(ids)
        elif s.points is not None:
            n = len(s.points)
            orows["sample_id"] += [rec.sample_id] * n
            orows["class"] += [names.get(int(c), UNKNOWN) for c in s.points.cls]
            orows["area_px"] += [None] * n
        else:
            n = 0
        srows.append(
            {
                "sample_id": rec.sample_id,
                "split": rec.split,
                "category": rec.meta.get("category"),
                "width": int(w),
                "height": int(h),
                "mpp": rec.meta.get("mpp"),
                "objects": n,
                "density": n / (w * h / DENSITY_PATCH**2) if w and h else None,
            }
        )
        if progress:
            progress(k + 1, len(recs))
    samples = pl.DataFrame(
        srows,
        schema={
            "sample_id": pl.Utf8,
            "split": pl.Utf8,
            "category": pl.Utf8,
            "width": pl.Int64,
            "height": pl.Int64,
            "mpp": pl.Float64,
            "objects": pl.Int64,
            "density": pl.Float64,
        },
    )
    objects = pl.DataFrame(
        orows, schema={"sample_id": pl.Utf8, "class": pl.Utf8, "area_px": pl.Float64}
    ).join(samples.select("sample_id", "split", "category", "mpp"), on="sample_id", how="left")
    objects = objects.with_columns(area_um2=pl.col("area_px") * pl.col("mpp") ** 2).drop("mpp")
    return AnnotationStats(dataset, samples, objects)


def class_table(st: AnnotationStats, by: str = "split") -> pl.DataFrame:
    """Objects per class (rows) and ``by`` value (columns: ``split`` or ``category``), with
    ``Total`` row and column; seed 000 Table 3's "# of nuclei" when ``by = category``."""
    o = st.objects.with_columns(_label(by).alias(by))
    if o.is_empty():
        return pl.DataFrame({"class": [], "Total": []})
    wide = o.pivot(on=by, index="class", values="sample_id", aggregate_function="len")
    cols = sorted(c for c in wide.columns if c != "class")
    wide = wide.select("class", *cols).fill_null(0).sort("class")
    wide = wide.with_columns(Total=pl.sum_horizontal(cols))
    total = wide.select(
        pl.lit("Total").alias("class"), *(pl.col(c).sum() for c in cols + ["Total"])
    )
    return pl.concat([wide, total], how="vertical_relaxed")


def density_table(st: AnnotationStats, by: str | None = None) -> pl.DataFrame:
    """Seed 003 Table 1's ND: the mean objects per 256 x 256 px patch, with the number of
    samples, objects, tile sizes and the density's spread (``by``: e.g. ``split``)."""
    keys = [by] if by else []
    s = st.samples.with_columns(_label(by).alias(by)) if by else st.samples
    agg = [
        pl.len().alias("samples"),
        pl.col("objects").sum().alias("objects"),
        pl.col("density").mean().alias("density_mean"),
        pl.col("density").std().alias("density_sd"),
        pl.col("density").min().alias("density_min"),
        pl.col("density").max().alias("density_max"),
        (pl.col("width").cast(pl.Utf8) + "x" + pl.col("height").cast(pl.Utf8))
        .unique()
        .sort()
        .str.join(", ")
        .alias("tile_sizes"),
    ]
    out = s.group_by(keys).agg(agg).sort(keys) if keys else s.select(agg)
    return out.with_columns(pl.lit(st.dataset).alias("dataset")).select("dataset", *out.columns)


def area_table(st: AnnotationStats, by: str = "class") -> pl.DataFrame:
    """Object area distributions per ``by`` (``class``, ``split``...) and overall: n, mean and
    quantiles (5, 25, 50, 75, 95 %) in px, and the median in um^2 where mpp is known."""
    o = st.objects.filter(pl.col("area_px").is_not_null())
    if o.is_empty():
        return pl.DataFrame({by: [], "n": []})

    def agg(frame: pl.DataFrame, key) -> pl.DataFrame:
        q = {
            f"p{int(p * 100):02d}_px": pl.col("area_px").quantile(p, "linear")
            for p in (0.05, 0.25, 0.5, 0.75, 0.95)
        }
        exprs = [
            pl.len().alias("n"),
            pl.col("area_px").mean().alias("mean_px"),
            *(e.alias(k) for k, e in q.items()),
            pl.col("area_um2").median().alias("median_um2"),
        ]
        if key is None:
            return frame.select(pl.lit("all").alias(by), *exprs)
        return frame.with_columns(_label(by).alias(by)).group_by(by).agg(exprs).sort(by)

    return pl.concat([agg(o, by), agg(o, None)], how="vertical_relaxed")


#: The tables of ``cellbench stats`` (name -> description).
TABLES = {
    "key": "key statistics (seed 000 Table 1)",
    "centers": "per center: patients, slides, samples, objects",
    "categories": "per diagnostic category: slides, samples, objects (seed 000 Table 3)",
    "classes": "objects per class and split",
    "class_by_category": "objects per class and category (seed 000 Table 3, # of nuclei)",
    "density": "objects per 256x256 px patch, per split and overall (seed 003 Table 1, ND)",
    "areas": "object areas per class: px quantiles, median um^2",
}


def dataset_tables(
    catalog: Catalog, dataset: str, split: str | None = None, progress=None
) -> dict[str, pl.DataFrame]:
    """Every table of :data:`TABLES` for one dataset (one pass over the annotations)."""
    from cellbench.data.samples import sample_table

    table = sample_table(catalog, [dataset], split)
    st = annotation_stats(catalog, dataset, split, progress)
    return {
        "key": key_statistics(table),
        "centers": center_table(table),
        "categories": category_table(table),
        "classes": class_table(st, "split"),
        "class_by_category": class_table(st, "category"),
        "density": pl.concat(
            [density_table(st, "split"), density_table(st).with_columns(split=pl.lit("all"))],
            how="diagonal_relaxed",
        ),
        "areas": area_table(st, "class"),
    }
