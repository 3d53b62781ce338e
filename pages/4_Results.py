"""Results: per-group heatmaps and tables with CIs, per-sample distributions, error view."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures

ui.header(
    "Results",
    "Means over samples with 95% bootstrap intervals (resampled by patient, "
    "slide or sample), per-sample distributions, and the errors of one sample.",
)

GROUP_KEYS = [
    "test_dataset",
    "center",
    "organ",
    "stain",
    "category",
    "class",
    "slide_id",
    "patient_id",
]

with ui.guard("The results"):
    runs = ui.runs()
    done = runs.filter(pl.col("status") == "complete") if "status" in runs.columns else runs
    if done.is_empty():
        st.info(
            "No finished runs yet: evaluate a model on the Evaluate page or with "
            "`cellbench evaluate`."
        )
        st.stop()
    labels = ui.run_labels(done)
    chosen = st.multiselect(
        "Runs", list(labels), default=list(labels)[:4], format_func=labels.get, key="r_runs"
    )
    if not chosen:
        st.warning("Choose at least one run.")
        st.stop()
    metrics, classes = ui.metrics_of(chosen)
    c = st.columns(4)
    prefer = [m for m in ("pq", "f1", "aji", "dice1") if m in metrics]
    metric = c[0].selectbox(
        "Metric", metrics, index=metrics.index(prefer[0]) if prefer else 0, key="r_metric"
    )
    group = c[1].selectbox("Group by", GROUP_KEYS, index=1, key="r_group")
    cls = c[2].selectbox("Class", classes, key="r_class", disabled=group == "class")
    n_boot = c[3].select_slider("Bootstrap resamples", [200, 1000, 5000], 1000, key="r_boot")
    s = ui.summary(chosen, metric, ["run_id", group], None if group == "class" else cls, n_boot)
    s = s.with_columns(run=pl.col("run_id").replace_strict(labels, default=pl.col("run_id")))
    st.subheader(f"Mean {metric} per run and {group}")
    if s.is_empty():
        st.info(f"No values of {metric} for class {cls} in these runs.")
    else:
        ui.show_figure(
            figures.summary_heatmap(s, "run", group, metric),
            s,
            key="heat",
            name=f"{metric}_by_{group}",
        )
        ui.show_figure(
            figures.ci_bars(s, group, metric, color="run"),
            s,
            key="bars",
            name=f"{metric}_by_{group}_ci",
        )
        st.dataframe(
            s.select("run", group, "n", "mean", "ci_low", "ci_high", "resampled"), hide_index=True
        )

    st.subheader("Dataset figures of each run's preset")
    from cellbench.analysis import dataset_figures

    figs = dataset_figures(ui.store(), chosen).filter(pl.col("metric") == metric)
    st.dataframe(
        figs.with_columns(run=pl.col("run_id").replace_strict(labels, default=None)).select(
            "run", "class", "metric", "value"
        ),
        hide_index=True,
    )

    st.subheader(f"{metric} per sample")
    vals = ui.values(chosen, metric, "all" if group == "class" else cls)
    vals = vals.with_columns(run=pl.col("run_id").replace_strict(labels, default=None))
    ui.show_figure(
        figures.distribution(vals, "run", metric), vals, key="dist", name=f"{metric}_per_sample"
    )

    st.subheader("Errors of one sample")
    st.caption(
        "Select a row: the sample is shown with matched nuclei in green, false "
        "positives in red and missed nuclei in yellow (the preset's own matching)."
    )
    table = vals.select("run", "sample_id", "center", "organ", "value", "run_id").sort("value")
    ev = st.dataframe(
        table.drop("run_id"),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="r_pick",
        height=250,
    )
    picked = ev.selection.rows if ev is not None else []
    if picked:
        row = table.row(picked[0], named=True)
        img, counts, note = ui.error_image(row["run_id"], row["sample_id"])
        c = st.columns([3, 1])
        with c[0]:
            ui.show_figure(
                figures.image_figure(img, f"{row['sample_id']} · {row['run']}", height=650),
                key="err",
                name=f"errors_{row['sample_id']}",
            )
        c[1].metric("True positives", counts["tp"])
        c[1].metric("False positives", counts["fp"])
        c[1].metric("Missed (FN)", counts["fn"])
        c[1].caption(note)
