"""Dataset explorer: a sortable gallery with annotations overlaid, one sample up close, and a
deep-zoom whole-slide viewer with objects overlaid."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cellbench.app import scrollgrid, ui
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
    from cellbench.analysis.grid import select
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
    size = g[4].select_slider("Tile size", scrollgrid.SIZES, 160, key="x_size")
    ranges = {}
    counts = rows["n_objects"].drop_nulls()
    if counts.len() > 1 and counts.min() < counts.max():
        lo, hi = int(counts.min()), int(counts.max())
        ranges["n_objects"] = st.slider("Objects per sample", lo, hi, (lo, hi), key="x_nobj")
    sel = select(rows, sort_by, desc, equals, ranges)
    st.subheader(f"Gallery: {ui.as_text(dataset)} ({sel.height} of {rows.height} samples)")
    if sel.height > scrollgrid.MAX_ITEMS:
        st.caption(f"The first {scrollgrid.MAX_ITEMS} are shown: filter to narrow.")
        sel = sel.head(scrollgrid.MAX_ITEMS)
    classes = cat.get(dataset).classes
    flags = (show_inst, show_pts, show_tissue)

    def draw(sid: str, _errors: bool):  # on the tile server's thread, when scrolled to
        try:
            return overlay.square(_overlay(dataset, sid, *flags, 256)[0])
        except Exception:  # noqa: BLE001 - the reason shows when the sample is opened
            return None

    ids = sel["sample_id"].to_list()
    vals = sel[sort_by].to_list()
    items = [
        (k, sid, f"{sort_by} {v}" if sort_by != "sample_id" else "", "t")
        for k, (sid, v) in enumerate(zip(ids, vals, strict=True))
    ]
    base = ui.thumb_urls(["explorer", dataset, *flags], ids, draw)
    clicked = scrollgrid.show(f"x_grid_{dataset}", base, items, tile=size, height=560)
    if clicked in ids:
        st.session_state["x_sample"] = clicked  # shown below, under "One sample"
    if classes:
        cc = overlay.class_colors(classes)
        ui.color_legend([(c.name, cc[c.id]) for c in classes], "Classes: ")

    st.subheader("One sample")
    ids = sel["sample_id"].to_list() or rows["sample_id"].to_list()
    if qp.get("sample") in ids and qp.get("dataset") == dataset:
        st.session_state.setdefault("x_sample", qp["sample"])
    if st.session_state.get("x_sample") not in ids:
        st.session_state["x_sample"] = ids[0] if ids else None
    c = st.columns([3, 1])
    sid = c[0].selectbox("Sample", ids, key="x_sample")
    deep = c[1].toggle("Deep zoom", False, key="x_deep", help="Wheel zoom, click an object")
    if sid:
        img, meta = _overlay(dataset, sid, show_inst, show_pts, show_tissue, 2048)
        left, right = st.columns([3, 1])
        with left:
            if deep:
                from cellbench.data.samples import load_sample
                from cellbench.viz.deepzoom import sample_objects
                from cellbench.viz.overlay import canvas

                s = load_sample(cat, dataset, sid)
                objs = sample_objects(s, classes)
                ui.deep_zoom(canvas(s), objs, title=sid, mpp=s.meta.get("mpp"), height=700)
            else:
                ui.show_figure(
                    figures.image_figure(img, sid, height=700),
                    key="x_one",
                    name=f"{dataset}_{sid}",
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
    from cellbench.viz.deepzoom import qupath_objects

    shown, skipped = [], []  # one layer per file
    for p in picked:
        shown += qupath_objects(wsi.read_objects(p, skipped=skipped), p.name, info.mpp)
    if up is not None:
        got = wsi.read_objects(up.getvalue(), up.name, skipped)
        shown += qupath_objects(got, up.name, info.mpp)
    if skipped:
        st.warning(
            f"{len(skipped)} object(s) could not be read and are not shown; the first: "
            + ui.as_text(skipped[0])
        )
    mpp = f", {info.mpp:.3f} µm/px" if info.mpp else ""
    st.caption(
        f"{info.dimensions[0]} x {info.dimensions[1]} level-0 px{mpp}, {info.levels} level(s); "
        f"{len(shown)} object(s). Wheel to zoom (to full resolution and beyond), drag to pan, "
        "the overview map to jump, click an object for its class and measurements."
    )
    ui.deep_zoom(info.path, shown, title=info.path.name, mpp=info.mpp)
