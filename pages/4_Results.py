"""Results: one test set at a time: group figures with n and CIs, the sample grid with error
views, confusion matrices and threshold curves, per-sample distributions."""

from __future__ import annotations

import hashlib
import importlib

import polars as pl
import streamlit as st

from cellbench.app import scrollgrid, ui
from cellbench.viz import figures

ui.header(
    "Results",
    "Runs compared on one test set at a time: means over samples with n and 95% bootstrap "
    "intervals where n >= 5 (resampled by patient, slide or sample), every sample's errors in "
    "a sortable grid, confusion matrices and threshold curves.",
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


def _linked_run(key: str, chosen) -> None:
    """A deep link's ``?run=`` chooses the run of every one-run panel (grid, classification,
    pooled figures) until the user picks another."""
    if st.query_params.get("run") in chosen:
        st.session_state.setdefault(key, st.query_params["run"])


def _pooled_section(chosen, labels, group, metric, cls) -> None:
    _linked_run("r_prun", chosen)
    run = st.selectbox(
        "Run (pooled figures: one run)", chosen, format_func=labels.get, key="r_prun"
    )
    if group in ("class", "test_dataset"):
        st.info(
            f"Pooling per {ui.as_text(group)} is the run's own dataset figure: see the table below."
        )
        return
    p = ui.pooled(run, group)
    p = p.filter((pl.col("metric") == metric) & (pl.col("class") == cls))
    st.subheader(
        f"{ui.as_text(metric)} ({ui.as_text(cls)}) per {ui.as_text(group)}: the preset's figure on "
        "each group's samples"
    )
    if p.is_empty():
        st.info(f"No pooled {ui.as_text(metric)} for class {ui.as_text(cls)}.")
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
    st.subheader(f"Mean {ui.as_text(metric)} per run and {ui.as_text(group)}")
    if s.is_empty():
        st.info(f"No values of {ui.as_text(metric)} for class {ui.as_text(cls)} in these runs.")
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
    from cellbench.analysis.detail import best_thresholds, class_table, confusion_frame

    st.subheader("Classification and detection")
    st.caption(
        "The confusion matrix of matched objects (paired by centroid regardless of class), "
        "per-class counts and F1, and, for point runs with scores, precision / recall / F1 "
        "against the score threshold. The run's predictions are read back (stored, or kept by "
        "the evaluation); a run without them has them made once by a background job."
    )
    c = st.columns([3, 1, 1])
    _linked_run("r_drun", chosen)
    run = c[0].selectbox("Run", chosen, format_func=labels.get, key="r_drun")
    norm = c[1].selectbox("Normalise", ["true", "pred", "none"], key="r_norm")
    ids = ui.grid(run)["sample_id"].to_list()
    if not ui.wait_for_predictions(run, ids, "The confusion matrix"):
        return
    with st.spinner("Pairing the run's objects ..."):
        a = ui.analysis(run)

    def to_grid(points) -> None:  # a click on a cell: its samples in the sample grid
        cell = next((p.get("customdata") for p in points if p.get("customdata")), None)
        if cell:
            st.session_state.update(r_view="Sample grid", g_run=run, g_cell=(run, *cell[:2]))

    ui.show_figure(
        figures.confusion_heatmap(a, norm),
        confusion_frame(a, "none"),
        key="conf",
        name="confusion",
        on_click=to_grid,
    )
    st.caption("Click a cell to see its samples in the sample grid.")
    st.caption(f"{ui.as_text(a['pairing'])}; {a['n_samples']} samples.")
    st.dataframe(class_table(a), hide_index=True)
    if a["curves"]:
        ui.show_figure(
            figures.threshold_curves(a), best_thresholds(a), key="curves", name="threshold_curves"
        )
        st.dataframe(best_thresholds(a), hide_index=True)


def _test_sets(table: pl.DataFrame) -> dict[str, str]:
    """``{key: label}`` of the sample sets complete runs were scored on, most runs first."""
    from cellbench.analysis.comparable import sample_sets

    return {
        f"{r['test_dataset']}|{r['sample_set']}": f"{r['test_dataset']} · "
        f"{r['split'] or 'all samples'} · {r['n']} samples · {r['runs']} run(s)"
        for r in sample_sets(table).iter_rows(named=True)
    }


def _coverage(table: pl.DataFrame, chosen, labels) -> None:
    cov = table.filter(pl.col("run_id").is_in(chosen)).select(
        run=pl.col("run_id").replace_strict(labels, default=pl.col("run_id")),
        status="status",
        coverage="coverage",
        samples="n_samples",
        split=pl.col("split").fill_null("all"),
        preset="preset",
    )
    st.dataframe(cov, hide_index=True)


def _active(job) -> bool:
    return job is not None and job["status"] in ("queued", "loading", "running")


def _grid_tiles(run: str, sel: pl.DataFrame, sort_by: str, size: int, every: list[str]) -> None:
    """The scrolling grid of ``sel``'s samples (:mod:`cellbench.app.scrollgrid`), an Open
    box for the keyboard, and the progress of the keep job of the run's samples ``every``,
    polled until it ends (the tiles then show the run's errors)."""
    from cellbench.viz.review import prediction_ready

    job = ui.keep_job(run, every)  # the run's predictions, kept once
    rec = ui.store().get_run(run)
    ids = sel["sample_id"].to_list()
    vals = sel[sort_by].to_list() if sort_by in sel.columns else [None] * len(ids)
    items = []
    for k, (sid, val) in enumerate(zip(ids, vals, strict=True)):
        state = "e" if prediction_ready(rec, sid) else "t"
        shown = f"{val:.3f}" if isinstance(val, float) else val
        note = "" if state == "e" else " · ground truth"
        items.append((k, sid, f"{sort_by} {shown}{note}", state))
    base = ui.thumb_set(run, ids)
    opened = scrollgrid.show(f"g_grid_{run}", base, items, tile=size)
    pick = st.columns([4, 1], vertical_alignment="bottom")
    order = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]  # first tile by default
    sid = pick[0].selectbox("Open a sample", ids, key=f"g_pick_{run}_{order}") if ids else None
    if pick[1].button("Open", key=f"g_open_{run}", disabled=not ids):
        opened = sid
    if opened is not None and opened in ids:
        st.session_state["r_open"] = (run, opened)
        st.rerun()

    @st.fragment(run_every=1.0 if _active(job) else None)
    def progress() -> None:  # the keep job's progress; when it ends, the tiles' errors
        now = ui.keep_job(run, every) if job is not None else None
        if now is not None:
            ui.job_row(now, prefix="gkeep_")
        if _active(job) and not _active(now):
            st.rerun(scope="app")

    progress()


def _grid_section(chosen, labels, metric) -> None:
    from cellbench.analysis.grid import META, select
    from cellbench.data.vocabulary import center_label

    st.caption(
        "Every sample of one run, as thumbnails: matched objects green, false positives red, "
        "missed yellow where the run's prediction is at hand (stored predictions, or kept by "
        "the evaluation); otherwise the ground truth, while a background job makes and keeps "
        "the run's predictions. Sort and filter by any per-sample value or metadata; one "
        "scrolling grid, each image drawn as it scrolls into view; a click on a tile shows "
        "the sample's errors, values and links."
    )
    c = st.columns([3, 2, 1, 2])
    _linked_run("g_run", chosen)
    run = c[0].selectbox("Run", chosen, format_func=labels.get, key="g_run")
    g = ui.grid(run)
    if g.is_empty():
        st.info("This run has no per-sample rows.")
        return
    from cellbench.app import review
    from cellbench.runs import tags

    known = tags.known()
    tag = st.selectbox("Tagged", ["", *known], key="g_tag", format_func=lambda t: t or "any")
    if tag:
        ds = ui.store().get_run(run)["test_dataset"]
        g = g.filter(pl.col("sample_id").is_in(tags.tagged_samples(ds, tag)))
    cell = st.session_state.get("g_cell")
    if cell and cell[0] == run:  # from a click on the confusion matrix
        from cellbench.analysis.detail import cell_samples

        counts = cell_samples(ui.analysis(run), cell[1], cell[2])
        bar = st.columns([4, 1])
        bar[0].info(
            f"{len(counts)} samples with true {ui.as_text(cell[1])} objects paired with "
            f"{ui.as_text(cell[2])} (column *in cell*)"
        )
        if bar[1].button("Show all samples", key="g_cell_clear"):
            st.session_state.pop("g_cell", None)
            st.rerun()
        n = pl.DataFrame(
            {"sample_id": list(counts), "in cell": list(counts.values())},
            schema={"sample_id": pl.Utf8, "in cell": pl.Int64},
        )
        g = g.join(n, on="sample_id", how="inner")
    matched = review.object_filter(run, g)
    if matched is not None:
        g = matched
    numeric = [k for k, t in g.schema.items() if t.is_numeric()]
    sortable = numeric + [m for m in META if m in g.columns]
    if matched is None and st.session_state.get("g_sort") == "matching objects":
        st.session_state["g_sort"] = metric  # the filter was switched off
    sort_by = c[1].selectbox(
        "Sort by", sortable, index=sortable.index(metric) if metric in sortable else 0, key="g_sort"
    )
    desc = c[2].toggle("Descending", False, key="g_desc")
    size = c[3].select_slider("Tile size", scrollgrid.SIZES, 160, key="g_size")
    f = st.columns(3)
    equals = {}
    for k, col in enumerate(("center", "organ", "category")):
        vals = sorted(v for v in g[col].unique().to_list() if v is not None)
        if len(vals) > 1:
            equals[col] = f[k].multiselect(
                col.capitalize(),
                vals,
                key=f"g_f_{col}",
                format_func=center_label if col == "center" else str,
            )
    ranges = {}
    if metric in g.columns and g[metric].drop_nulls().len() > 1:
        lo, hi = float(g[metric].min()), float(g[metric].max())
        if lo < hi:
            got = st.slider(f"{metric} between", lo, hi, (lo, hi), key=f"g_range_{run}")
            if got != (lo, hi):  # samples without a value stay until a range is chosen
                ranges[metric] = got
    sel = select(g, sort_by, desc, equals, ranges)
    more = (
        f"; the first {scrollgrid.MAX_ITEMS} shown, filter to narrow"
        if sel.height > scrollgrid.MAX_ITEMS
        else ""
    )
    st.caption(
        f"{sel.height} of {g.height} samples, sorted by {ui.as_text(sort_by)}{more}; scroll "
        "for more, click a tile to open its sample"
    )
    _grid_tiles(run, sel.head(scrollgrid.MAX_ITEMS), sort_by, size, g["sample_id"].to_list())
    ui.color_legend(
        [("matched", "#00C853"), ("false positive", "#FF1744"), ("missed", "#FFD600")],
        "Thumbnails: ",
    )
    review.views_panel()


def _open_sample(labels) -> None:
    """The opened sample: its errors, metadata, values and links."""
    run_id, sid = st.session_state["r_open"]
    runs = ui.runs()
    if run_id not in set(runs["run_id"].to_list()):
        return
    rec = ui.store().get_run(run_id)
    st.subheader(f"{ui.as_text(sid)} · {ui.as_text(labels.get(run_id, run_id))}")
    if not ui.wait_for_predictions(run_id, ui.grid(run_id)["sample_id"].to_list(), "This view"):
        return
    img, counts, note = ui.error_image(run_id, sid)
    deep = rec.get("task") != "semantic" and st.toggle(
        "Deep zoom: wheel to zoom, click an object for its class, probability, IoU and size; "
        "layers and classes can be switched off",
        False,
        key="r_deep",
    )
    compare = st.toggle("Side by side with another run of this test set", False, key="r_cmp")
    if compare:
        from cellbench.app import review

        review.compare_runs(run_id, sid, labels)
        right = st.container()
    elif deep:  # the viewer takes the page's width; the values follow below it
        from cellbench.viz.deepzoom import ERROR_HIDDEN, ERROR_LAYERS, error_objects

        image, objs, _ = error_objects(rec, sid, ui.catalog(), ui.store())
        ui.deep_zoom(image, objs, ERROR_LAYERS, sid, ERROR_HIDDEN, height=650)
        right = st.container()
    else:
        left, right = st.columns([3, 1])
        with left:
            ui.show_figure(
                figures.image_figure(img, None, height=650), key="err", name=f"errors_{sid}"
            )
    with right:
        a, b, c = st.columns(3)
        a.metric("TP", counts["tp"])
        b.metric("FP", counts["fp"])
        c.metric("FN", counts["fn"])
        st.caption(ui.as_text(note))
        row = ui.grid(run_id).filter(pl.col("sample_id") == sid)
        if row.height:
            vals = row.row(0, named=True)
            st.dataframe(
                [
                    {
                        "field": k,
                        "value": ""
                        if v is None
                        else f"{v:.4g}"
                        if isinstance(v, float)
                        else str(v),
                    }
                    for k, v in vals.items()
                ],
                hide_index=True,
                height=360,
            )
        ui.link(
            "2_Dataset_explorer.py",
            "Open in the Dataset explorer",
            {"dataset": rec["test_dataset"], "sample": sid},
            ":material/image_search:",
        )

        ui.geojson_button(
            "QuPath GeoJSON (TP / FP / FN)",
            rec["test_dataset"],
            sid,
            "errors",
            rec,
            key="r_open_geojson",
        )
        with st.expander("Tags"):
            from cellbench.app import review

            review.tags_panel(rec, sid)
        with st.expander("The run"):
            st.json(
                {
                    k: rec.get(k)
                    for k in (
                        "run_id",
                        "model_id",
                        "test_dataset",
                        "split",
                        "preset",
                        "iou",
                        "status",
                        "n_samples",
                        "finished",
                        "code_version",
                    )
                }
            )
            ui.link("4_Results.py", "Link to this sample", {"run": run_id, "sample": sid})


with ui.guard("The results"):
    from cellbench.app import review as _review

    _review.apply_view_params()  # a saved view or a shared link (Sample grid settings)
    table = ui.run_table()
    done = table.filter(pl.col("status") == "complete")
    if done.is_empty():
        st.info(
            "No finished runs yet: evaluate a model on the Evaluate page or with "
            "`cellbench evaluate`."
        )
        st.stop()
    qp = st.query_params
    if "run" in qp and qp["run"] in set(done["run_id"].to_list()):
        r = done.filter(pl.col("run_id") == qp["run"]).row(0, named=True)
        st.session_state.setdefault("r_set", f"{r['test_dataset']}|{r['sample_set']}")
        if "sample" in qp:
            st.session_state.setdefault("r_open", (qp["run"], qp["sample"]))
    sets = _test_sets(done)
    ANY = "any|any"
    key = st.selectbox(
        "Test set",
        [*sets, ANY],
        format_func=lambda k: sets.get(
            k, "every finished run (mixes test sets: compare with care)"
        ),
        key="r_set",
        help="Runs are compared on one sample set at a time: the same test dataset, split or "
        "named test set, and the same samples. The most used set comes first.",
    )
    pool = (
        done
        if key == ANY
        else done.filter((pl.col("test_dataset") + "|" + pl.col("sample_set").fill_null("")) == key)
    )
    labels = ui.run_labels(pool)
    chosen = st.multiselect(  # every complete run of the test set (baseline included)
        "Runs", list(labels), default=list(labels), format_func=labels.get, key=f"r_runs_{key}"
    )
    if not chosen:
        st.warning("Choose at least one run.")
        st.stop()
    _coverage(table, chosen, labels)
    tested = pool.filter(pl.col("run_id").is_in(chosen)).get_column("test_dataset").to_list()
    for note in ui.catalog().caveats(tested):
        st.warning(ui.as_text(note))
    # resolution / modality / stain risks recorded with the runs: a few shown, many folded
    warned = [
        f"{labels[rid]}: {w}"
        for rid in chosen
        for w in ui.store().get_run(rid).get("warnings") or []
    ]
    if len(warned) <= 3:
        for w in warned:
            st.warning(ui.as_text(w))
    else:
        n_runs = len({w.split(": ", 1)[0] for w in warned})
        st.warning(
            f"{len(warned)} warnings recorded with {n_runs} of these runs (mpp, modality, stain)."
        )
        with st.expander("The warnings"):
            for w in warned:
                st.caption(ui.as_text(w))
    metrics, classes = ui.metrics_of(chosen)
    c = st.columns(4)
    prefer = [m for m in ("pq", "f1", "aji", "dice1") if m in metrics]
    metric = c[0].selectbox(
        "Metric", metrics, index=metrics.index(prefer[0]) if prefer else 0, key="r_metric"
    )
    n_vals = ui.distinct_values(chosen, GROUP_KEYS)
    several = [k for k in GROUP_KEYS[1:] if n_vals.get(k, 0) > 1]  # one group says nothing
    group = c[1].selectbox(
        "Group by",
        GROUP_KEYS,
        index=GROUP_KEYS.index(several[0]) if several else 0,
        key="r_group",
        format_func=lambda k: f"{k} ({n_vals[k]})" if k in n_vals else k,
    )
    cls = c[2].selectbox("Class", classes, key="r_class", disabled=group == "class")
    n_boot = c[3].select_slider("Bootstrap resamples", [200, 1000, 5000], 1000, key="r_boot")
    view = (
        st.segmented_control(
            "View",
            ["Groups", "Sample grid", "Classification", "Per sample", "Dataset figures"],
            default="Groups",
            key="r_view",
        )
        or "Groups"
    )

    if view == "Groups":
        how = st.radio(
            "Figure per group",
            list(FIGURES),
            format_func=FIGURES.get,
            horizontal=True,
            key="r_how",
            help="Mean: every sample weighs the same, 95% bootstrap CIs where n >= 5 "
            "(resampled by patient, else slide, else sample: column *resampled*). Pooled: the "
            "preset's own dataset figure computed on each group's samples (OCELOT: counts "
            "pooled per organ; CoNIC: mPQ+), one run at a time.",
        )
        if how == "pooled":
            with ui.guard("The pooled figures"):
                _pooled_section(chosen, labels, group, metric, cls)
        else:
            _mean_section(chosen, labels, group, metric, cls, n_boot, metrics)
    elif view == "Sample grid":
        with ui.guard("The sample grid"):
            _grid_section(chosen, labels, metric)
    elif view == "Classification":
        with ui.guard("The classification analysis"):
            _detail_section(chosen, labels)
    elif view == "Per sample":
        st.subheader(f"{ui.as_text(metric)} per sample")
        vals = ui.values(chosen, metric, "all" if group == "class" else cls)
        vals = vals.with_columns(run=pl.col("run_id").replace_strict(labels, default=None))

        def open_point(points) -> None:  # a click on a sample's point opens it below
            got = next((p.get("customdata") for p in points if p.get("customdata")), None)
            if got:
                st.session_state["r_open"] = (got[0], got[1])

        ui.show_figure(
            figures.distribution(vals, "run", metric),
            vals,
            key="dist",
            name=f"{metric}_per_sample",
            on_click=open_point,
        )
        st.caption("Click a sample's point to open its errors below.")
        st.dataframe(vals.select("run", "sample_id", "center", "organ", "value"), hide_index=True)
    else:
        st.subheader("Dataset figures of each run's preset")
        from cellbench.analysis import dataset_figures

        figs = dataset_figures(ui.store(), chosen).filter(pl.col("metric") == metric)
        st.dataframe(
            figs.with_columns(run=pl.col("run_id").replace_strict(labels, default=None)).select(
                "run", "class", "metric", "value"
            ),
            hide_index=True,
        )

# what the grid, the error view and the classification panel import, while the user reads
ui.prefetch(
    importlib.import_module,
    [("cellbench.viz.review",), ("cellbench.analysis.grid",), ("cellbench.analysis.detail",)],
)

with ui.guard("The opened sample"):
    if st.session_state.get("r_open"):
        _open_sample(labels)
