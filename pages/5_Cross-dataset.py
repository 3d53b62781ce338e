"""Cross-dataset: train x test matrix, normalised C_ij, ranking, top-k fusion (seed 003)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures

ui.header(
    "Cross-dataset",
    "P(D_i, D_j): models of one family trained on D_i tested on D_j. Only complete runs on "
    "identical sample sets enter (partial runs and runs on other sample sets are listed below, "
    "never used); each cell shows its n. Normalisations, the ranking on the unified test set "
    "and top-k fusion follow seed 003.",
)

with ui.guard("The cross-dataset analysis"):
    from cellbench.analysis import (
        CROSS_FORMS,
        EMPTY_POLICIES,
        WEIGHTINGS,
        as_matrix,
        cross_correlation,
        fusion,
        ranking,
        run_table,
        train_test_matrix,
    )
    from cellbench.metrics import INSTANCE_PRESETS

    c = st.columns(4)
    preset = c[0].selectbox("Preset", INSTANCE_PRESETS, key="c_preset")
    METRICS = ["pq", "aji", "dice1", "f1", "dq", "sq"]
    metric = c[1].selectbox("Metric", METRICS, key="c_metric")
    form = c[2].radio(
        "Normalisation of C_ij",
        list(CROSS_FORMS),
        key="c_form",
        help="\n\n".join(f"{k}: {v}" for k, v in CROSS_FORMS.items()),
    )
    weighting = c[3].radio(
        "Unified test set weighting",
        list(WEIGHTINGS),
        key="c_weighting",
        help="\n\n".join(f"{k}: {v}" for k, v in WEIGHTINGS.items()),
    )
    from cellbench.data.testsets import PRESETS, stored_names, versions

    names = dict.fromkeys([*stored_names(), *PRESETS])
    # a name is its newest version; older versions stay selectable (committed results use them)
    sets = ["runs", *(r for n in names for r in [n, *(f"{n}@v{v}" for v in versions(n)[:-1])])]
    test_set = st.selectbox(
        "Test set",
        sets,
        key="c_testset",
        help="runs: per test dataset, the sample set most complete runs share. A named test "
        "set (nucfuse-test: seed 003's NucFuse-test, 14 tiles per dataset) compares runs on "
        "exactly its members (`cellbench testset show NAME`).",
    )
    empty = st.radio(
        "Samples with an undefined metric (neither GT nor prediction)",
        list(EMPTY_POLICIES),
        key="c_empty",
        horizontal=True,
        help="\n\n".join(f"{k}: {v}" for k, v in EMPTY_POLICIES.items()),
    )
    store = ui.store()
    sig = ui.store_signature()

    @st.cache_data(show_spinner="Building the matrix ...", max_entries=16)
    def _matrix(sig, preset: str, metric: str, weighting: str, test_set: str, empty: str):
        ts = None if test_set == "runs" else test_set
        kw = {"weighting": weighting, "test_set": ts, "empty": empty}
        return (
            train_test_matrix(store, metric, preset, test_set=ts, empty=empty),
            ranking(store, None, metric, preset, **kw),
            fusion(store, None, metric, preset, **kw),
            run_table(store, preset),
        )

    long_all, rank_all, fus_all, table = _matrix(sig, preset, metric, weighting, test_set, empty)
    # the other metrics of this view are computed while the user looks at this one
    ui.prefetch(
        _matrix, [(sig, preset, m, weighting, test_set, empty) for m in METRICS if m != metric]
    )
    if long_all.is_empty():
        st.info(
            "No complete runs of models with training sets for this preset yet. Evaluate "
            "models trained on catalog datasets on several test sets to fill the matrix."
        )
        st.stop()
    fams = long_all["family"].unique(maintain_order=True).to_list()
    fam = st.selectbox("Model family", fams, key="c_family") if len(fams) > 1 else fams[0]
    long = long_all.filter(pl.col("family") == fam)
    rank = rank_all.filter(pl.col("family") == fam)
    fus = fus_all.filter(pl.col("family") == fam)

    st.subheader(f"P(D_i, D_j): mean {ui.as_text(metric)} ({ui.as_text(fam)})")
    ui.show_figure(
        figures.matrix_heatmap(
            long,
            "mean",
            f"Mean {metric} ({preset}, {fam}): rows trained on, columns tested on",
            metric,
        ),
        long,
        key="P",
        name=f"P_{metric}",
    )
    st.dataframe(as_matrix(long), hide_index=True)
    st.caption(
        f"n per cell, the samples compared. Undefined samples ({empty}): {EMPTY_POLICIES[empty]}."
    )
    st.dataframe(as_matrix(long, value="n"), hide_index=True)
    if long["undefined"].sum():
        st.caption("Samples per cell whose metric was undefined for that run:")
        st.dataframe(as_matrix(long, value="undefined"), hide_index=True)

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
    st.caption(f"{weighting}: {WEIGHTINGS[weighting]}")
    if rank.filter(pl.col("rank").is_not_null()).is_empty():
        st.info("No training set has comparable runs on every test dataset.")
    else:
        ui.show_figure(figures.ranking_bars(rank, metric), rank, key="rank", name="ranking")
    st.dataframe(rank, hide_index=True)
    st.subheader("Top-k fusion")
    st.caption(
        "Fused sets are prefixes of the ranking; expected(k) = for each test subset the best "
        "of the top-k single-dataset models, averaged over subsets. A missing fused model is "
        "a gap; `command` says what to train."
    )
    if fus.filter(pl.col("k") > 1).is_empty():
        st.info("Fewer than two single-dataset training sets are ranked: no fusion curve yet.")
    else:
        ui.show_figure(figures.fusion_curve(fus, metric), fus, key="fus", name="fusion")
    st.dataframe(fus, hide_index=True)

    left_out = table.filter(~pl.col("comparable"))
    if left_out.height:
        st.subheader("Runs left out of these comparisons")
        st.dataframe(
            left_out.select(
                "run_id", "model_id", "test_dataset", "status", "coverage", "n_samples"
            ),
            hide_index=True,
        )
