"""The sample metadata table: one row per sample of every available dataset.

Columns: the standard vocabulary (:data:`cellbench.data.sample.STANDARD_COLUMNS`) with fixed types,
then dataset-specific extras (null where a dataset lacks them). Units: ``mpp`` in microns per
pixel, ``width``/``height`` in pixels, ``age`` in years. Building the table reads headers and
annotation counts only, never pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellbench.data.catalog import Catalog
from cellbench.data.record_cache import cached_records, records_of
from cellbench.data.sample import STANDARD_COLUMNS, Points, Sample, SampleRecord

if TYPE_CHECKING:
    import polars as pl

#: Polars type of each standard column (names of ``polars`` dtypes: polars is imported only
#: when a table is built, so commands that list the catalog start faster).
_TYPES: dict[str, str] = {
    "dataset": "Utf8",
    "split": "Utf8",
    "sample_id": "Utf8",
    "organ": "Utf8",
    "stain": "Utf8",
    "center": "Utf8",
    "center_name": "Utf8",
    "slide_id": "Utf8",
    "patient_id": "Utf8",
    "age": "Int32",
    "sex": "Utf8",
    "category": "Utf8",
    "mpp": "Float64",
    "width": "Int32",
    "height": "Int32",
    "n_objects": "Int32",
}
assert tuple(_TYPES) == STANDARD_COLUMNS


def schema() -> dict[str, pl.DataType]:
    """The standard columns with their polars types (:data:`SCHEMA`)."""
    import polars as pl

    return {k: getattr(pl, v) for k, v in _TYPES.items()}


def __getattr__(name: str):
    if name == "SCHEMA":  # built on first use
        return schema()
    raise AttributeError(name)


def records(catalog: Catalog, dataset_id: str, split: str | None = None) -> list[SampleRecord]:
    """The sample records of one dataset, optionally of one split."""
    recs = cached_records(catalog, dataset_id)
    return [r for r in recs if split is None or r.split == split]


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    import polars as pl

    cols = schema()
    if not rows:
        return pl.DataFrame(schema=cols)
    extras = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in cols]
    std = pl.DataFrame({k: [r.get(k) for r in rows] for k in cols}, schema=cols, strict=False)
    if not extras:
        return std
    ext = pl.DataFrame({k: [r.get(k) for r in rows] for k in extras}, strict=False)
    return pl.concat([std, ext], how="horizontal")


def sample_table(
    catalog: Catalog, dataset_ids: list[str] | None = None, split: str | None = None
) -> pl.DataFrame:
    """One row per sample of the given (default: every available) datasets."""
    import polars as pl

    ids = (
        dataset_ids
        if dataset_ids is not None
        else [d.id for d in catalog if catalog.is_available(d)]
    )
    frames = [_frame([r.meta for r in records(catalog, i, split)]) for i in ids]
    if not frames:
        return pl.DataFrame(schema=schema())
    return pl.concat(frames, how="diagonal_relaxed")


def load_sample(catalog: Catalog, dataset_id: str, sample_id: str) -> Sample:
    """Decode one sample (image and ground truth)."""
    from cellbench.data.readers import get_reader

    reader = get_reader(catalog, dataset_id)
    for r in records_of(reader):
        if r.sample_id == sample_id:
            return reader.load(r)
    raise KeyError(f"no sample '{sample_id}' in dataset '{dataset_id}'")


def iter_samples(catalog: Catalog, dataset_id: str, split: str | None = None):
    """Yield ``(record, sample)`` for every sample of a dataset (one reader, listed once)."""
    from cellbench.data.readers import get_reader

    reader = get_reader(catalog, dataset_id)
    for r in records_of(reader):
        if split is None or r.split == split:
            yield r, reader.load(r)


def load_predictions(catalog: Catalog, dataset_id: str, name: str) -> dict[str, Points]:
    """A stored prediction set of a dataset: ``{sample_id: Points}``."""
    from cellbench.data.readers import get_reader

    reader = get_reader(catalog, dataset_id)
    if name not in reader.prediction_sets():
        raise KeyError(f"dataset '{dataset_id}' has no prediction set '{name}'")
    return {r.sample_id: reader.load_predictions(r, name) for r in records_of(reader)}


def catalog_rows(cat: Catalog, cached_only: bool = False) -> list[dict[str, Any]]:
    """One summary dict per dataset (the JSON of ``cellbench catalog list``).

    ``n_samples`` counts the local records (0 when the data is absent, with ``obtain`` saying
    how to get it). ``cached_only``: nothing is listed here; a dataset whose records are not
    cached yet has ``n_samples`` None (:mod:`cellbench.data.listing` lists it).
    """
    from cellbench.data.record_cache import peek

    def count(d) -> int | None:
        if not cached_only:
            return len(records(cat, d.id))
        recs = peek(cat, d.id)
        return None if recs is None else len(recs)

    rows = []
    for d in cat:
        avail = cat.is_available(d)
        rows.append(
            {
                "id": d.id,
                "name": d.name,
                "stain": d.stain,
                "modality": d.modality,
                "organs": d.organs,
                "tasks": d.tasks,
                "mpp": d.mpp,
                "classes": [c.name for c in d.classes],
                "license": d.license,
                "citation": d.citation,
                "url": d.url,
                "available": avail,
                "n_samples": count(d) if avail else 0,
                "obtain": None if avail else d.obtain,
            }
        )
    return rows
