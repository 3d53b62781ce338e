"""One set of filters for the catalog's datasets and their samples.

A choice applies to both tables: a dataset is listed when its own facets match (any of its
organs, stains, centers, classes ...) and, where a sample-level choice is made, when at least one
of its local samples matches (a dataset without local data is kept on its own facets, unless a
choice only samples can answer was made: split, category, sex, age); a sample is listed when it
matches every choice and its dataset is listed. Facet values are in the shared vocabulary
(:mod:`cellbench.data.vocabulary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

#: facet -> (dataset column, sample column); None where the facet does not exist at that level.
FACETS: dict[str, tuple[str | None, str | None]] = {
    "dataset": ("id", "dataset"),
    "stain": ("stain", "stain"),
    "modality": ("modality", None),
    "organ": ("organs", "organ"),
    "task": ("tasks", None),
    "license": ("license", None),
    "center": ("centers", "center"),
    "class": ("classes", None),
    "split": (None, "split"),
    "category": (None, "category"),
    "sex": (None, "sex"),
}


@dataclass
class Choice:
    """What the user chose: ``values`` per facet (empty = any), ``available`` (None = any),
    ``age`` (inclusive range in years, None = any)."""

    values: dict[str, list] = field(default_factory=dict)
    available: bool | None = None
    age: tuple[float, float] | None = None

    def sample_level(self) -> bool:
        """A choice that local samples are checked against."""
        return self.age is not None or any(
            v and FACETS[k][1] is not None and k != "dataset" for k, v in self.values.items()
        )

    def samples_only(self) -> bool:
        """A choice that only samples can answer (split, category, sex, age)."""
        return self.age is not None or any(
            v and FACETS[k][0] is None for k, v in self.values.items()
        )


def dataset_frame(rows: Sequence[Mapping], catalog, samples: pl.DataFrame) -> pl.DataFrame:
    """One row per catalog dataset with list columns for its facets (``centers`` from the
    local samples)."""
    centers: dict[str, list[str]] = {}
    if not samples.is_empty():
        for r in samples.group_by("dataset").agg(pl.col("center").unique()).iter_rows(named=True):
            centers[r["dataset"]] = sorted(c for c in r["center"] if c is not None)
    return pl.DataFrame(
        [
            {
                "id": r["id"],
                "name": r["name"],
                "available": r["available"],
                "samples": r["n_samples"],
                "stain": list(r["stain"]),
                "modality": r["modality"],
                "organs": list(r["organs"]),
                "tasks": list(r["tasks"]),
                "license": r["license"],
                "classes": [c.name for c in catalog.get(r["id"]).classes],
                "centers": centers.get(r["id"], []),
                "obtain": "" if r["available"] else r["obtain"] or "",
            }
            for r in rows
        ],
        schema_overrides={k: pl.List(pl.Utf8) for k in ("stain", "organs", "tasks", "classes")}
        | {"centers": pl.List(pl.Utf8)},
    )


def options(datasets: pl.DataFrame, samples: pl.DataFrame) -> dict[str, list]:
    """The values each facet can take (union of the dataset and sample levels), sorted."""
    out = {}
    for facet, (dcol, scol) in FACETS.items():
        vals: set = set()
        if dcol is not None and dcol in datasets.columns:
            col = datasets[dcol]
            vals |= set(col.explode().drop_nulls().to_list() if col.dtype == pl.List else col)
        if scol is not None and scol in samples.columns:
            vals |= set(samples[scol].drop_nulls().unique().to_list())
        out[facet] = sorted(v for v in vals if v not in (None, ""))
    return out


def apply(
    choice: Choice, datasets: pl.DataFrame, samples: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The datasets and samples that match ``choice`` (see the module docstring)."""
    ds, sm = datasets, samples
    for facet, chosen in choice.values.items():
        if not chosen:
            continue
        dcol, scol = FACETS[facet]
        if dcol is not None:
            if ds.schema[dcol] == pl.List:
                ds = ds.filter(pl.col(dcol).list.eval(pl.element().is_in(chosen)).list.any())
            else:
                ds = ds.filter(pl.col(dcol).is_in(chosen))
        if scol is not None and scol in sm.columns:
            sm = sm.filter(pl.col(scol).is_in(chosen))
    if choice.age is not None and "age" in sm.columns:
        sm = sm.filter(pl.col("age").is_between(*choice.age))
    if choice.available is not None:
        ds = ds.filter(pl.col("available") == choice.available)
    sm = sm.filter(pl.col("dataset").is_in(ds["id"].to_list()))
    if choice.sample_level():
        # a local dataset needs a matching sample; one without local data is kept on its own
        # facets unless a choice only samples can answer was made
        matched = pl.col("id").is_in(sm["dataset"].unique().to_list())
        ds = ds.filter(matched | (~pl.col("available") & (not choice.samples_only())))
    return ds, sm
