"""Review tools of the Results page: tags on samples and objects, two runs side by side on one
sample, object-level filters of the sample grid, and saved views as deep links.

Everything shown is escaped (:func:`cellbench.app.ui.as_text`); tags are kept in the
workspace (:mod:`cellbench.runs.tags`), saved views too (``views.json``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.core import config
from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import DataError
from cellbench.core.safety import read_json

#: Error layers an object of a run's error view belongs to.
LAYERS = ("FP", "FN", "TP", "ground truth", "prediction")


def tags_panel(rec: dict[str, Any], sid: str, key: str = "t") -> None:
    """Tags of the opened sample and of its objects (ids as the deep-zoom viewer shows them
    on a click), with the exports: every tag as CSV, this sample's tagged objects as a QuPath
    GeoJSON classified by tag."""
    from cellbench.runs import tags

    ds = rec["test_dataset"]
    st.markdown("**Tags**")
    now = tags.sample_tags(ds, sid)
    got = st.multiselect(
        "This sample",
        sorted(set(tags.known()) | set(now)),
        default=now,
        key=f"{key}_sample_{rec['run_id']}_{sid}",
        accept_new_options=True,
        help="e.g. label error, ambiguous; type a new tag and press Enter",
    )
    if sorted(got) != now:
        tags.set_sample_tags(ds, sid, got)
        st.rerun()
    with st.form(f"{key}_object_form", clear_on_submit=True, border=False):
        c = st.columns([2, 2, 3, 2])
        layer = c[0].selectbox("Layer", LAYERS, key=f"{key}_layer")
        oid = c[1].number_input("Object id", min_value=0, step=1, key=f"{key}_oid")
        tag = c[2].selectbox("Tag", tags.known(), key=f"{key}_otag", accept_new_options=True)
        if c[3].form_submit_button("Tag object") and tag:
            tags.tag_object(ds, sid, rec["run_id"], layer, int(oid), tag)
            st.rerun()
    mine = tags.object_tags(rec["run_id"], sid)
    for k, row in enumerate(mine):
        c = st.columns([5, 1])
        c[0].caption(ui.as_text(f"{row['layer']} {row['object_id']}: {row['tag']}"))
        if c[1].button("Remove", key=f"{key}_rm_{k}"):
            tags.untag_object(row)
            st.rerun()
    c = st.columns(2)
    c[0].download_button(
        "All tags (CSV)", tags.to_csv(), "cellbench_tags.csv", "text/csv", key=f"{key}_csv"
    )
    if mine:
        from cellbench.viz.deepzoom import error_objects

        _, objs, _ = error_objects(rec, sid, ui.catalog(), ui.store())
        doc = tags.objects_geojson(objs, mine)
        c[1].download_button(
            "Tagged objects (QuPath GeoJSON)",
            json.dumps(doc),
            f"{sid}.tags.geojson",
            "application/geo+json",
            key=f"{key}_geojson",
        )


def compare_runs(run_id: str, sid: str, labels: dict[str, str]) -> None:
    """The opened sample's errors under another run of the same test dataset, side by side
    (each waiting on its own kept predictions)."""
    runs = ui.runs()
    rec = ui.store().get_run(run_id)
    same = runs.filter(
        (pl.col("test_dataset") == rec["test_dataset"]) & (pl.col("run_id") != run_id)
    )["run_id"].to_list()
    others = [r for r in same if sid in set(ui.grid(r)["sample_id"].to_list())]
    if not others:
        st.caption("No other run scored this sample.")
        return
    names = {**ui.run_labels(runs), **labels}
    other = st.selectbox(
        "Compare with", others, format_func=lambda r: names.get(r, r), key="r_compare"
    )
    if not ui.wait_for_predictions(other, [sid], "The comparison"):
        return
    cols = st.columns(2)
    for col, r in zip(cols, (run_id, other), strict=True):
        img, counts, note = ui.error_image(r, sid)
        with col:
            st.caption(
                ui.as_text(
                    f"{names.get(r, r)}: TP {counts['tp']}, FP {counts['fp']}, "
                    f"FN {counts['fn']} ({note})"
                )
            )
            st.image(img, width="stretch")


def object_filter(run_id: str, grid: pl.DataFrame) -> pl.DataFrame | None:
    """Object-level filters of the grid ("false positives of class X", "area > A",
    "probability < p"); the grid's rows with at least one matching object, with their count
    in ``matching objects``, or None when no filter is set. Needs the run's predictions at
    hand (a background job keeps them first)."""
    with st.expander("Object filters", expanded=bool(st.session_state.get("g_obj_on"))):

        def sort_by_matches() -> None:  # most matching objects first, once switched on
            if st.session_state.get("g_obj_on"):
                st.session_state.update(g_sort="matching objects", g_desc=True)

        on = st.toggle("Filter samples by their objects", key="g_obj_on", on_change=sort_by_matches)
        if not on:
            return None
        ids = grid["sample_id"].to_list()
        if not ui.wait_for_predictions(run_id, ids, "Filtering by objects"):
            return grid.head(0)
        objs = ui.object_table(run_id)
        c = st.columns(4)
        kinds = c[0].multiselect("Kind", ["TP", "FP", "FN"], ["FP"], key="g_obj_kind")
        classes = sorted(v for v in objs["class"].unique().to_list() if v is not None)
        cls = c[1].multiselect("Class", classes, key="g_obj_cls")
        amin = c[2].number_input("Area at least (px)", 0.0, value=0.0, key="g_obj_area")
        pmax = c[3].number_input(
            "Probability below", 0.0, 1.0, value=1.0, step=0.05, key="g_obj_prob"
        )
        sel = objs
        if kinds:
            sel = sel.filter(pl.col("kind").is_in(kinds))
        if cls:
            sel = sel.filter(pl.col("class").is_in(cls))
        if amin > 0:
            sel = sel.filter(pl.col("area_px") >= amin)
        if pmax < 1.0:
            sel = sel.filter(pl.col("probability") < pmax)
        n = sel.group_by("sample_id").len("matching objects")
        st.caption(f"{sel.height} matching objects in {n.height} samples")
        return grid.join(n, on="sample_id", how="inner")


def _views_path():
    return config.home() / "views.json"


def saved_views() -> dict[str, dict[str, str]]:
    """Named views of the Results page (query parameters), from the workspace."""
    p = _views_path()
    try:
        doc = read_json(p) if p.is_file() else {}
    except DataError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): v for k, v in doc.items() if isinstance(v, dict)}


#: Grid settings a view carries (session key -> query parameter).
VIEW_KEYS = {
    "g_run": "run",
    "g_sort": "sort",
    "g_desc": "desc",
    "g_tag": "tag",
    "g_obj_on": "objects",
    "g_obj_kind": "kind",
    "g_obj_cls": "cls",
}


def view_params() -> dict[str, str]:
    """The grid's settings as query parameters (lists joined by ``|``)."""
    out = {"view": "grid"}
    for key, name in VIEW_KEYS.items():
        v = st.session_state.get(key)
        if v in (None, [], False):
            continue
        out[name] = "|".join(map(str, v)) if isinstance(v, list) else str(v)
    return out


def apply_view_params() -> None:
    """Restore the grid's settings from the page's query parameters (a deep link), once."""
    qp = st.query_params
    if qp.get("view") != "grid" or st.session_state.get("_view_applied"):
        return
    st.session_state["_view_applied"] = True
    st.session_state["r_view"] = "Sample grid"
    for key, name in VIEW_KEYS.items():
        if name not in qp:
            continue
        v = qp[name]
        if key in ("g_desc", "g_obj_on"):
            st.session_state[key] = v == "True"
        elif key in ("g_obj_kind", "g_obj_cls"):
            st.session_state[key] = [x for x in v.split("|") if x]
        else:
            st.session_state[key] = v


def views_panel() -> None:
    """This grid as a link, saved under a name, and the saved views to open."""
    params = view_params()
    with st.expander("Link to this view, saved views"):
        st.code("Results?" + urlencode(params), language=None)
        c = st.columns([3, 1])
        name = c[0].text_input("Save as", key="g_view_name", max_chars=60)
        if c[1].button("Save view", key="g_view_save") and name.strip():
            views = saved_views()
            views[" ".join(name.split())] = params
            write_json_atomic(_views_path(), views)
            st.rerun()
        for name, params in saved_views().items():
            st.markdown(f"[{ui.as_text(name)}](Results?{urlencode(params)})")
