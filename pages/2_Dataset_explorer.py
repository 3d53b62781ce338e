"""Dataset explorer: a sortable gallery with annotations overlaid, one sample up close, and a
pan/zoom whole-slide viewer with objects overlaid."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures, overlay

ui.header(
    "Dataset explorer",
    "Samples with their annotations overlaid (outlines and points in their class colours, "
    "tissue masks), sortable and filterable by metadata and counts; whole-slide images with "
    "annotations or predictions, through the same reader as the CLI.",
)


@st.cache_data(show_spinner=False, max_entries=512)
def _overlay(dataset: str, sample_id: str, inst: bool, pts: bool, tissue: bool, side: int):
    from cellbench.data.samples import load_sample

    cat = ui.catalog()
    s = load_sample(cat, dataset, sample_id)
    img = overlay.sample_overlay(s, cat.get(dataset).classes, inst, pts, tissue, max_side=side)
    return img, s.meta


SORTABLE = ("sample_id", "n_objects", "center", "organ", "category", "split", "width", "mpp")

with ui.guard("The explorer"):
    from cellbench.analysis.grid import page, select
    from cellbench.data.vocabulary import center_label

    cat = ui.catalog()
    table = ui.sample_table()
    avail = [d.id for d in cat if cat.is_available(d)]
    if not avail:
        st.info(f"No dataset is available locally ({ui.as_text(ui.data_hint())}).")
        st.stop()
    qp = st.query_params
    if qp.get("dataset") in avail:
        st.session_state.setdefault("x_dataset", qp["dataset"])
    c = st.columns(5)
    dataset = c[0].selectbox("Dataset", avail, key="x_dataset")
    rows = table.filter(pl.col("dataset") == dataset)
    splits = ["all", *sorted(s for s in rows["split"].unique().to_list() if s is not None)]
    split = c[1].selectbox("Split", splits, key="x_split")
    if split != "all":
        rows = rows.filter(pl.col("split") == split)
    show_inst = c[2].toggle("Outlines", True, key="x_inst")
    show_pts = c[3].toggle("Points", True, key="x_pts")
    show_tissue = c[4].toggle("Tissue mask", True, key="x_tissue")
    if "has_pixels" in rows.columns and rows["has_pixels"].eq(False).any():
        n_no = int(rows["has_pixels"].eq(False).sum())
        st.caption(
            f"{n_no} of {rows.height} samples have annotations but no local pixels (points "
            "only): they are drawn on a grey canvas of their size."
        )

    g = st.columns([2, 1, 2, 2, 1])
    sortable = [k for k in SORTABLE if k in rows.columns]
    sort_by = g[0].selectbox("Sort by", sortable, key="x_sort")
    desc = g[1].toggle("Descending", False, key="x_desc")
    equals = {}
    names = dict(zip(rows["center"], rows["center_name"], strict=True))
    for k, col in ((2, "center"), (3, "organ")):
        vals = sorted(v for v in rows[col].unique().to_list() if v is not None)
        if len(vals) > 1:
            equals[col] = g[k].multiselect(
                col.capitalize(),
                vals,
                key=f"x_f_{col}",
                format_func=(lambda v: center_label(v, names.get(v))) if col == "center" else str,
            )
    per_page = g[4].selectbox("Per page", [8, 12, 24], key="x_per")
    ranges = {}
    counts = rows["n_objects"].drop_nulls()
    if counts.len() > 1 and counts.min() < counts.max():
        lo, hi = int(counts.min()), int(counts.max())
        ranges["n_objects"] = st.slider("Objects per sample", lo, hi, (lo, hi), key="x_nobj")
    sel = select(rows, sort_by, desc, equals, ranges)
    n_pages = max(1, -(-sel.height // per_page))
    number = st.number_input(f"Gallery page (of {n_pages})", 1, n_pages, 1, key="x_page")
    chunk, _ = page(sel, int(number), per_page)
    st.subheader(f"Gallery: {ui.as_text(dataset)} ({sel.height} of {rows.height} samples)")
    cols = st.columns(4)
    classes = cat.get(dataset).classes
    for k, r in enumerate(chunk.iter_rows(named=True)):
        sid = r["sample_id"]
        thumb, _ = _overlay(dataset, sid, show_inst, show_pts, show_tissue, 256)
        with cols[k % 4]:
            extra = f" · {r[sort_by]}" if sort_by != "sample_id" else ""
            st.image(thumb, caption=f"{sid}{extra}", width="stretch")
            if st.button("Open", key=f"x_open_{dataset}_{sid}"):
                st.session_state["x_sample"] = sid
    if classes:
        cc = overlay.class_colors(classes)
        ui.color_legend([(c.name, cc[c.id]) for c in classes], "Classes: ")

    st.subheader("One sample")
    ids = sel["sample_id"].to_list() or rows["sample_id"].to_list()
    if qp.get("sample") in ids and qp.get("dataset") == dataset:
        st.session_state.setdefault("x_sample", qp["sample"])
    if st.session_state.get("x_sample") not in ids:
        st.session_state["x_sample"] = ids[0] if ids else None
    sid = st.selectbox("Sample", ids, key="x_sample")
    if sid:
        img, meta = _overlay(dataset, sid, show_inst, show_pts, show_tissue, 2048)
        left, right = st.columns([3, 1])
        with left:
            ui.show_figure(
                figures.image_figure(img, sid, height=700), key="x_one", name=f"{dataset}_{sid}"
            )
        with right:
            shown = {**meta}
            if meta.get("center") and meta.get("center_name"):
                shown["center"] = center_label(meta["center"], meta["center_name"])
            st.dataframe(
                [{"field": k, "value": "" if v is None else str(v)} for k, v in shown.items()],
                hide_index=True,
                height=520,
            )

            ui.geojson_button("QuPath GeoJSON (ground truth)", dataset, sid, key="x_geojson")

with ui.guard("The whole-slide viewer"):
    from cellbench.core import config
    from cellbench.viz import slide as wsi

    st.subheader("Whole-slide images")

    folder = config.data_root() / "wsi"
    found = ui.slides(str(folder))
    tissue = [i for i in found if i.kind == "tissue"]
    fixtures = [i for i in found if i.kind == "test pattern"]
    broken = [i for i in found if i.kind == "unreadable"]
    show_fix = (
        st.toggle(f"Also list {len(fixtures)} test pattern(s)", False, key="w_fixtures")
        if fixtures
        else False
    )
    choices = tissue + (fixtures if show_fix else [])
    if broken:
        with st.expander(f"{len(broken)} file(s) under {ui.as_text(folder)} could not be opened"):
            for b in broken:
                st.caption(ui.as_text(f"{b.path.name}: {b.error}"))
    if not choices:
        st.caption(f"No readable slides under {ui.as_text(folder)}.")
        st.stop()
    info = st.selectbox(
        "Slide",
        choices,
        format_func=lambda i: (
            f"{i.path.name} ({i.kind}, {i.dimensions[0]} x {i.dimensions[1]} "
            f"px, {i.levels} level(s), {i.backend})"
        ),
        key="w_slide",
    )
    W, H = 900, 560
    state = st.session_state
    if state.get("w_for") != str(info.path):  # a new slide starts fitted, centred
        state["w_for"] = str(info.path)
        state["w_cx"], state["w_cy"] = info.dimensions[0] / 2, info.dimensions[1] / 2
        state["w_zoom"] = wsi.fit_zoom(info.dimensions, W, H)
    fit = wsi.fit_zoom(info.dimensions, W, H)

    def _move(dx=0.0, dy=0.0, factor=1.0):
        z = min(max(state["w_zoom"] * factor, fit / 2), 4.0)
        state["w_zoom"] = z
        state["w_cx"] = min(max(state["w_cx"] + dx * W / z / 2, 0), info.dimensions[0])
        state["w_cy"] = min(max(state["w_cy"] + dy * H / z / 2, 0), info.dimensions[1])

    b = st.columns(8)
    b[0].button("Zoom in", on_click=_move, kwargs={"factor": 2.0}, key="w_in")
    b[1].button("Zoom out", on_click=_move, kwargs={"factor": 0.5}, key="w_out")
    b[2].button("←", on_click=_move, kwargs={"dx": -1}, key="w_left")
    b[3].button("→", on_click=_move, kwargs={"dx": 1}, key="w_right")
    b[4].button("↑", on_click=_move, kwargs={"dy": -1}, key="w_up")
    b[5].button("↓", on_click=_move, kwargs={"dy": 1}, key="w_down")
    b[6].button(
        "Whole slide",
        on_click=lambda: state.update(
            w_zoom=fit, w_cx=info.dimensions[0] / 2, w_cy=info.dimensions[1] / 2
        ),
        key="w_fit",
    )

    # objects: a GeoJSON uploaded here, or files next to the slide / in the workspace's slides
    # folder whose names start with the slide's name (QuPath exports, `cellbench predict`)
    stem = info.path.stem
    near = sorted(
        {
            p
            for d in (info.path.parent, config.home() / "slides")
            if d.is_dir()
            for p in d.glob("*.geojson")
            if p.name.startswith(stem)
        }
    )
    o = st.columns([2, 2])
    picked = o[0].multiselect(
        "Objects to overlay", near, format_func=lambda p: p.name, default=near, key="w_objs"
    )
    up = o[1].file_uploader("Or a QuPath GeoJSON", type=["geojson", "json", "gz"], key="w_upload")
    objects, skipped = [], []
    for p in picked:
        objects += wsi.read_objects(p, skipped=skipped)
    if up is not None:
        objects += wsi.read_objects(up.getvalue(), up.name, skipped)
    if skipped:
        st.warning(
            f"{len(skipped)} object(s) could not be read and are not shown; the first: "
            + ui.as_text(skipped[0])
        )

    if objects:
        by_class = {o.class_name or "unclassified": o.color or (0, 200, 83) for o in objects}
        ui.color_legend(sorted(by_class.items()), "Objects: ")
    img, box, level = wsi.view(info.path, state["w_cx"], state["w_cy"], state["w_zoom"], W, H)
    n = 0
    if objects:
        img, n = wsi.draw_objects(img, box, objects, width=2 if state["w_zoom"] >= 0.25 else 1)
    mpp = f", {info.mpp:.3f} µm/px" if info.mpp else ""
    st.caption(
        f"Centre ({state['w_cx']:.0f}, {state['w_cy']:.0f}) level-0 px, zoom {state['w_zoom']:.3g} "
        f"(level {level}{mpp}); {n} of {len(objects)} objects in view."
    )
    ui.show_figure(
        figures.image_figure(img, None, height=H + 20), key="w_view", name=f"{stem}_view"
    )
