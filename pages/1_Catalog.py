"""Catalog: datasets with facets, the sample table with metadata filters, distributions."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures

ui.header("Catalog", "Every dataset of the catalog, and the samples of those available here.")

LABELS = {
    "dataset": "Dataset",
    "stain": "Stain",
    "modality": "Modality",
    "organ": "Organ",
    "task": "Task",
    "license": "Licence",
    "center": "Center",
    "class": "Class",
    "split": "Split",
    "category": "Category",
    "sex": "Sex",
}

with ui.guard("The catalog"):
    from cellbench.data import facets
    from cellbench.data.vocabulary import center_label

    cat = ui.catalog()
    table = ui.sample_table()
    ds = facets.dataset_frame(ui.catalog_rows(), cat, table)
    opts = facets.options(ds, table)
    names = (
        dict(zip(table["center"], table["center_name"], strict=True))
        if not table.is_empty()
        else {}
    )
    st.caption(
        "One set of filters for both tables: a dataset is listed when it matches (and, for a "
        "sample-level choice, when one of its local samples does); samples of listed datasets "
        "that match are in the sample table."
    )
    f = st.columns(6) + st.columns(7)
    choice = facets.Choice()
    for i, (facet, label) in enumerate(LABELS.items()):
        choice.values[facet] = f[i].multiselect(
            label,
            opts[facet],
            key=f"facet_{facet}",
            format_func=(lambda c: center_label(c, names.get(c))) if facet == "center" else str,
        )
    avail = f[11].selectbox(
        "Availability", ["all", "available here", "not available"], key="facet_avail"
    )
    choice.available = None if avail == "all" else avail == "available here"
    ages = table["age"].drop_nulls() if "age" in table.columns else pl.Series([])
    if ages.len() and int(ages.min()) < int(ages.max()):
        lo, hi = int(ages.min()), int(ages.max())
        age = f[12].slider("Age (years)", lo, hi, (lo, hi), key="s_age")
        choice.age = None if age == (lo, hi) else age
    sel, t = facets.apply(choice, ds, table)

    st.subheader("Datasets")
    shown = sel.with_columns(pl.col(pl.List(pl.Utf8)).list.join(", "))
    st.dataframe(shown, hide_index=True)
    st.caption(
        f"{sel.height} of {ds.height} datasets. Datasets not available here say how to "
        "obtain them (column *obtain*). Centers of TCGA slides are tissue source site codes; "
        "their institutions are in the sample table (*center_name*, from the GDC code table)."
    )

with ui.guard("Your own dataset"):
    from cellbench.data.user_data import MASK_KINDS, add_dataset, remove_dataset

    # the form is built when asked for (its dozen widgets cost every first visit otherwise)
    if st.toggle("Add your own dataset: a folder of images with label masks", key="a_open"):
        st.caption(
            "The same as `cellbench datasets add`: every image / mask pair is checked; bad "
            "pairs (unreadable, sizes differ, float labels) are named and left out, the good "
            "ones are copied to the workspace and listed like any dataset. Paths are on the "
            "machine running the app, inside its data root or workspace (or the folders it was "
            "started with in `CELLBENCH_APP_PATHS`)."
        )
        with st.form("add_dataset"):
            c = st.columns(3)
            ds_id = c[0].text_input("Dataset id", key="a_id", placeholder="my_nuclei")
            images = c[1].text_input("Images (glob)", key="a_images", placeholder="/data/img/*.png")
            labels = c[2].text_input(
                "Label mask of each image ({stem})",
                key="a_labels",
                placeholder="/data/masks/{stem}.tif",
            )
            c = st.columns(4)
            kind = c[0].selectbox("Masks", MASK_KINDS, key="a_kind")
            classes_file = c[1].text_input("Classes file (class masks)", key="a_classes")
            split_file = c[2].text_input("Split file (sample -> split)", key="a_split")
            mpp = c[3].number_input("Microns per pixel (0: unknown)", 0.0, 100.0, 0.0, key="a_mpp")
            c = st.columns(3)
            stain = c[0].text_input("Stain", "H&E", key="a_stain")
            organ = c[1].text_input("Organ", key="a_organ")
            name = c[2].text_input("Name", key="a_name")
            go = st.form_submit_button("Add")
        if go:
            for typed, what in (
                (images, "the images"),
                (labels, "the label masks"),
                (classes_file, "the classes file"),
                (split_file, "the split file"),
            ):
                if typed.strip():
                    ui.confined(typed, what)  # inside the data root or the workspace
            with st.spinner("Checking and copying the pairs ..."):
                res = add_dataset(
                    ds_id.strip(),
                    images.strip(),
                    labels.strip(),
                    kind=kind,
                    classes_file=classes_file.strip() or None,
                    split_from=split_file.strip() or None,
                    mpp=mpp or None,
                    stain=stain.strip() or "H&E",
                    organ=organ.strip() or None,
                    name=name.strip() or None,
                )
            st.session_state["a_result"] = res
            st.rerun()  # the tables above list the new dataset
        res = st.session_state.get("a_result")
        if res:
            st.success(
                f"Added {res['added']} samples to '{ui.as_text(res['dataset'])}' "
                f"({len(res['bad'])} left out)."
            )
            if res["bad"]:
                st.dataframe([{"file": f, "reason": why} for f, why in res["bad"]], hide_index=True)
    user = list(ui.catalog().user)
    if user:
        with st.expander("Remove one of your datasets"):
            gone = st.selectbox("User dataset", user, key="a_remove_id")
            if st.button("Remove it and its copied files", key="a_remove"):
                remove_dataset(gone)
                st.session_state.pop("a_result", None)
                st.rerun()


with ui.guard("The sample table"):
    st.subheader("Samples")
    if table.is_empty():
        st.info(
            f"No dataset is available locally ({ui.as_text(ui.data_hint())}). Point "
            "`CELLBENCH_DATA` at a data root to browse samples, or add your own dataset above."
        )
        st.stop()
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
    # one figure at a time, chosen here: six charts drawn at once cost every visit ~0.3 s
    dist = {
        "Center": lambda: figures.count_bar(t, "center"),
        "Stain": lambda: figures.count_bar(t, "stain"),
        "Category": lambda: figures.count_bar(t, "category"),
        "Organ": lambda: figures.count_bar(t, "organ"),
        "Nuclei per sample": lambda: figures.histogram(t, "n_objects", "Nuclei per sample"),
        "Age": lambda: figures.histogram(t, "age", "Age", unit="years"),
    }
    which = st.segmented_control("Samples per", list(dist), default="Center", key="dist")
    which = which or "Center"
    name = "per_" + which.lower().replace(" ", "_")
    ui.show_figure(dist[which](), t, key=f"dist_{name}", name=name)
