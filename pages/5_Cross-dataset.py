"""Cross-dataset: train x test matrix, normalised C_ij, ranking, top-k fusion (seed 003)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures

ui.header(
    "Cross-dataset",
    "P(D_i, D_j): models trained on D_i tested on D_j (newest complete "
    "run of each model and test set); its normalisations, the ranking on the unified "
    "test set, and dataset fusion.",
)

with ui.guard("The cross-dataset analysis"):
    from cellbench.analysis import (
        CROSS_FORMS,
        as_matrix,
        cross_correlation,
        fusion,
        ranking,
        train_test_matrix,
    )
    from cellbench.metrics import INSTANCE_PRESETS

    c = st.columns(3)
    preset = c[0].selectbox("Preset", INSTANCE_PRESETS, key="c_preset")
    metric = c[1].selectbox("Metric", ["pq", "aji", "dice1", "f1", "dq", "sq"], key="c_metric")
    form = c[2].radio(
        "Normalisation of C_ij",
        list(CROSS_FORMS),
        horizontal=True,
        key="c_form",
        help="\n\n".join(f"{k}: {v}" for k, v in CROSS_FORMS.items()),
    )
    store = ui.store()
    sig = ui.store_signature()

    @st.cache_data(show_spinner="Building the matrix ...", max_entries=16)
    def _matrix(sig, preset: str, metric: str):
        return train_test_matrix(store, metric, preset), ranking(store, None, metric, preset)

    long, rank = _matrix(sig, preset, metric)
    if long.is_empty():
        st.info(
            "No complete runs of models with training sets for this preset yet. Evaluate "
            "models trained on catalog datasets on several test sets to fill the matrix."
        )
        st.stop()
    st.subheader(f"P(D_i, D_j): mean {metric}")
    ui.show_figure(
        figures.matrix_heatmap(
            long, "mean", f"Mean {metric} ({preset}): rows trained on, columns tested on", metric
        ),
        long,
        key="P",
        name=f"P_{metric}",
    )
    st.dataframe(as_matrix(long), hide_index=True)

    st.subheader("C_ij")
    cij = cross_correlation(long, form)
    if cij.is_empty():
        st.info("C_ij needs datasets that are both a (single) training set and a test set.")
    else:
        zmid = 1.0 if form != "raw" else None
        ui.show_figure(
            figures.matrix_heatmap(cij, "value", CROSS_FORMS[form], "C_ij", zmid=zmid),
            cij,
            key="C",
            name=f"C_{form}",
        )

    st.subheader("Ranking on the unified test set")
    if rank.is_empty():
        st.info("No runs with known training sets.")
    else:
        ui.show_figure(figures.ranking_bars(rank, metric), rank, key="rank", name="ranking")
        st.dataframe(rank, hide_index=True)
        fus = fusion(rank)
        st.subheader("Top-k fusion")
        if fus.filter(pl.col("k") > 1).is_empty():
            st.info(
                "No fused training sets yet (models trained on several datasets, "
                "train_datasets 'a+b'): the fusion curve needs them."
            )
        else:
            ui.show_figure(figures.fusion_curve(fus, metric), fus, key="fus", name="fusion")
        st.dataframe(fus, hide_index=True)
