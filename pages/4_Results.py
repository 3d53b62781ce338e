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

FIGURES = {
    "mean": "mean of per-sample values (95% CI)",
    "pooled": "the preset's figure, pooled per group",
}


def _pooled_section(chosen, labels, group, metric, cls) -> None:
    run = st.selectbox(
        "Run (pooled figures: one run)", chosen, format_func=labels.get, key="r_prun"
    )
    if group in ("class", "test_dataset"):
        st.info(f"Pooling per {group} is the run's own dataset figure: see the table below.")
        return
    p = ui.pooled(run, group)
    p = p.filter((pl.col("metric") == metric) & (pl.col("class") == cls))
    st.subheader(f"{metric} ({cls}) per {group}: the preset's figure on each group's samples")
    if p.is_empty():
        st.info(f"No pooled {metric} for class {cls}.")
        return
    bars = p.rename({"value": "mean", "group": group}).with_columns(
        ci_low=pl.lit(None, pl.Float64), ci_high=pl.lit(None, pl.Float64)
    )
    ui.show_figure(
        figures.ci_bars(bars, group, metric), bars, key="pooled", name=f"{metric}_pooled_{group}"
    )
    st.dataframe(p, hide_index=True)


def _mean_section(chosen, labels, group, metric, cls, n_boot, metrics) -> None:
    by_cls = None if group == "class" else cls
    s = ui.summary(chosen, metric, ["run_id", group], by_cls, n_boot)
    # the other metrics of this view are summarised while the user looks at this one
    ui.prefetch(
        ui.summary,
        [(chosen, m, ["run_id", group], by_cls, n_boot) for m in metrics if m != metric],
    )
    s = s.with_columns(run=pl.col("run_id").replace_strict(labels, default=pl.col("run_id")))
    st.subheader(f"Mean {metric} per run and {group}")
    if s.is_empty():
        st.info(f"No values of {metric} for class {cls} in these runs.")
        return
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


def _detail_section(chosen, labels) -> None:
    st.subheader("Classification and detection")
    st.caption(
        "The confusion matrix of matched objects (paired by centroid regardless of class) "
        "and, for point runs, precision / recall / F1 against the score threshold. The run's "
        "predictions are replayed once (a model run is recomputed), then cached."
    )
    c = st.columns([3, 1, 1])
    run = c[0].selectbox("Run", chosen, format_func=labels.get, key="r_drun")
    norm = c[1].selectbox("Normalise", ["true", "pred", "none"], key="r_norm")
    if not c[2].button("Compute", key="r_detail") and not st.session_state.get(f"d_{run}"):
        return
    st.session_state[f"d_{run}"] = True
    with st.spinner("Replaying the run's predictions ..."):
        a = ui.analysis(run)
    from cellbench.analysis.detail import best_thresholds, confusion_frame

    ui.show_figure(
        figures.confusion_heatmap(a, norm),
        confusion_frame(a, "none"),
        key="conf",
        name="confusion",
    )
    if a["curves"]:
        ui.show_figure(
            figures.threshold_curves(a), best_thresholds(a), key="curves", name="threshold_curves"
        )
        st.dataframe(best_thresholds(a), hide_index=True)


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
    tested = done.filter(pl.col("run_id").is_in(chosen)).get_column("test_dataset").to_list()
    for note in ui.catalog().caveats(tested):
        st.warning(note)
    metrics, classes = ui.metrics_of(chosen)
    c = st.columns(4)
    prefer = [m for m in ("pq", "f1", "aji", "dice1") if m in metrics]
    metric = c[0].selectbox(
        "Metric", metrics, index=metrics.index(prefer[0]) if prefer else 0, key="r_metric"
    )
    group = c[1].selectbox("Group by", GROUP_KEYS, index=1, key="r_group")
    cls = c[2].selectbox("Class", classes, key="r_class", disabled=group == "class")
    n_boot = c[3].select_slider("Bootstrap resamples", [200, 1000, 5000], 1000, key="r_boot")
    how = st.radio(
        "Figure per group",
        list(FIGURES),
        format_func=FIGURES.get,
        horizontal=True,
        key="r_how",
        help="Mean: every sample weighs the same, 95% bootstrap CIs where n >= 5. Pooled: the "
        "preset's own dataset figure computed on each group's samples (OCELOT: counts pooled "
        "per organ; CoNIC: mPQ+), one run at a time.",
    )
    if how == "pooled":
        with ui.guard("The pooled figures"):
            _pooled_section(chosen, labels, group, metric, cls)
    else:
        _mean_section(chosen, labels, group, metric, cls, n_boot, metrics)

    with ui.guard("The classification analysis"):
        _detail_section(chosen, labels)

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
