"""Catalog: datasets with facets, the sample table with metadata filters, distributions."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures

ui.header("Catalog", "Every dataset of the catalog, and the samples of those available here.")

with ui.guard("The catalog"):
    rows = ui.catalog_rows()
    cat = ui.catalog()
    tab = ui.sample_table()
    centers = (
        {
            r["dataset"]: sorted(c for c in r["center"] if c is not None)
            for r in tab.group_by("dataset").agg(pl.col("center").unique()).iter_rows(named=True)
        }
        if not tab.is_empty()
        else {}
    )
    ds = pl.DataFrame(
        [
            {
                "id": r["id"],
                "name": r["name"],
                "available": r["available"],
                "samples": r["n_samples"],
                "stain": r["stain"],
                "modality": r["modality"],
                "organs": r["organs"],
                "tasks": r["tasks"],
                "license": r["license"],
                "classes": [c.name for c in cat.get(r["id"]).classes],
                "centers": centers.get(r["id"], []),
                "obtain": "" if r["available"] else r["obtain"],
            }
            for r in rows
        ]
    )

    st.subheader("Datasets")
    f = st.columns(4) + st.columns(4)

    def facet(col, label, i):
        vals = sorted(
            {v for vs in ds[col].to_list() for v in (vs if isinstance(vs, list) else [vs])}
        )
        return f[i].multiselect(label, vals, key=f"facet_{col}")

    stain = facet("stain", "Stain", 0)
    modality = facet("modality", "Modality", 1)
    organ = facet("organs", "Organ", 2)
    task = facet("tasks", "Task", 3)
    lic = facet("license", "Licence", 4)
    center = facet("centers", "Center", 5)
    classes = facet("classes", "Class", 6)
    avail = f[7].selectbox(
        "Availability", ["all", "available here", "not available"], key="facet_avail"
    )
    sel = ds
    for col, chosen in (
        ("stain", stain),
        ("organs", organ),
        ("tasks", task),
        ("centers", center),
        ("classes", classes),
    ):
        if chosen:
            sel = sel.filter(pl.col(col).list.eval(pl.element().is_in(chosen)).list.any())
    if modality:
        sel = sel.filter(pl.col("modality").is_in(modality))
    if lic:
        sel = sel.filter(pl.col("license").is_in(lic))
    if avail != "all":
        sel = sel.filter(pl.col("available") == (avail == "available here"))
    shown = sel.with_columns(pl.col(pl.List(pl.Utf8)).list.join(", "))
    st.dataframe(shown, hide_index=True)
    st.caption(
        f"{sel.height} of {ds.height} datasets. Datasets not available here say how to "
        "obtain them (column *obtain*)."
    )

with ui.guard("The sample table"):
    st.subheader("Samples")
    table = ui.sample_table()
    if table.is_empty():
        st.info(
            f"No dataset is available locally ({ui.data_hint()}). Point `CELLBENCH_DATA` "
            "at a data root to browse samples."
        )
        st.stop()
    c = st.columns(4)
    dsets = c[0].multiselect(
        "Dataset", sorted(table["dataset"].unique().to_list()), key="s_dataset"
    )

    def opts(col):
        return sorted(v for v in table[col].unique().to_list() if v is not None)

    split = c[1].multiselect("Split", opts("split"), key="s_split")
    organs = c[2].multiselect("Organ", opts("organ"), key="s_organ")
    stains = c[3].multiselect("Stain", opts("stain"), key="s_stain")
    c = st.columns(4)
    centers = c[0].multiselect("Center", opts("center"), key="s_center")
    cats = c[1].multiselect("Category", opts("category"), key="s_category")
    sexes = c[2].multiselect("Sex", opts("sex"), key="s_sex")
    ages = table["age"].drop_nulls()
    age = None
    if ages.len():
        lo, hi = int(ages.min()), int(ages.max())
        if lo < hi:
            age = c[3].slider("Age (years)", lo, hi, (lo, hi), key="s_age")
    t = table
    for col, chosen in (
        ("dataset", dsets),
        ("split", split),
        ("organ", organs),
        ("stain", stains),
        ("center", centers),
        ("category", cats),
        ("sex", sexes),
    ):
        if chosen:
            t = t.filter(pl.col(col).is_in(chosen))
    if age is not None and age != (int(ages.min()), int(ages.max())):
        t = t.filter(pl.col("age").is_between(*age))
    st.dataframe(t, hide_index=True, height=300)
    st.caption(f"{t.height} of {table.height} samples")
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download table (CSV)",
        lambda: figures.frame_bytes(t, "csv"),
        file_name="samples.csv",
        mime="text/csv",
        key="dl_csv",
    )
    d2.download_button(
        "Download table (parquet)",
        lambda: figures.frame_bytes(t, "parquet"),
        file_name="samples.parquet",
        key="dl_pq",
    )

    st.subheader("Distributions")
    g = st.columns(2)
    with g[0]:
        ui.show_figure(figures.count_bar(t, "center"), t, key="center", name="per_center")
        ui.show_figure(figures.count_bar(t, "stain"), t, key="stain", name="per_stain")
        ui.show_figure(
            figures.histogram(t, "n_objects", "Nuclei per sample"),
            t,
            key="nuc",
            name="nuclei_per_sample",
        )
    with g[1]:
        ui.show_figure(figures.count_bar(t, "category"), t, key="category", name="per_category")
        ui.show_figure(figures.count_bar(t, "organ"), t, key="organ", name="per_organ")
        ui.show_figure(figures.histogram(t, "age", "Age", unit="years"), t, key="age", name="age")
