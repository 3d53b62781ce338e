"""Dataset explorer: a gallery with annotations overlaid, one sample up close, whole slides."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cellbench.app import ui
from cellbench.core import config
from cellbench.viz import figures, overlay

ui.header(
    "Dataset explorer",
    "Samples with their annotations overlaid (outlines and points "
    "coloured by class, tissue masks); whole-slide images through tiffslide.",
)


@st.cache_data(show_spinner=False, max_entries=256)
def _overlay(dataset: str, sample_id: str, inst: bool, pts: bool, tissue: bool, side: int):
    from cellbench.data.samples import load_sample

    cat = ui.catalog()
    s = load_sample(cat, dataset, sample_id)
    img = overlay.sample_overlay(s, cat.get(dataset).classes, inst, pts, tissue)
    return overlay.thumbnail(img, side), s.meta


with ui.guard("The explorer"):
    cat = ui.catalog()
    table = ui.sample_table()
    avail = [d.id for d in cat if cat.is_available(d)]
    if not avail:
        st.info(f"No dataset is available locally ({ui.data_hint()}).")
        st.stop()
    c = st.columns(5)
    dataset = c[0].selectbox("Dataset", avail, key="x_dataset")
    rows = table.filter(table["dataset"] == dataset)
    splits = ["all", *sorted(s for s in rows["split"].unique().to_list() if s is not None)]
    split = c[1].selectbox("Split", splits, key="x_split")
    if split != "all":
        rows = rows.filter(rows["split"] == split)
    show_inst = c[2].toggle("Outlines", True, key="x_inst")
    show_pts = c[3].toggle("Points", True, key="x_pts")
    show_tissue = c[4].toggle("Tissue mask", True, key="x_tissue")
    ids = rows["sample_id"].to_list()
    per_page = 8
    n_pages = max(1, -(-len(ids) // per_page))
    page = st.number_input(f"Gallery page (of {n_pages})", 1, n_pages, 1, key="x_page")
    chunk = ids[(page - 1) * per_page : page * per_page]
    st.subheader(f"Gallery: {dataset} ({len(ids)} samples)")
    cols = st.columns(4)
    classes = cat.get(dataset).classes
    for k, sid in enumerate(chunk):
        thumb, _ = _overlay(dataset, sid, show_inst, show_pts, show_tissue, 256)
        cols[k % 4].image(thumb, caption=sid, width="stretch")
    if classes:
        cc = overlay.class_colors(classes)
        ui.color_legend([(c.name, cc[c.id]) for c in classes], "Classes: ")

    st.subheader("One sample")
    sid = st.selectbox("Sample", ids, index=ids.index(chunk[0]) if chunk else 0, key="x_sample")
    if sid:
        img, meta = _overlay(dataset, sid, show_inst, show_pts, show_tissue, 2048)
        left, right = st.columns([3, 1])
        with left:
            ui.show_figure(
                figures.image_figure(img, sid, height=700), key="x_one", name=f"{dataset}_{sid}"
            )
        right.dataframe(
            [{"field": k, "value": "" if v is None else str(v)} for k, v in meta.items()],
            hide_index=True,
            height=600,
        )

with ui.guard("The whole-slide viewer"):
    st.subheader("Whole-slide images")
    root = config.data_root()
    exts = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".qptiff", ".dcm")
    slides = (
        sorted(p for p in root.glob("wsi/*") if p.suffix.lower() in exts)
        if (root / "wsi").is_dir()
        else []
    )
    if not slides:
        st.caption(f"No slides under `{root / 'wsi'}`.")
    else:
        from cellbench.data.wsi import open_slide

        path = st.selectbox("Slide", slides, format_func=lambda p: Path(p).name, key="w_slide")
        with open_slide(path) as slide:
            w0, h0 = slide.dimensions
            c = st.columns([1, 2])
            c[0].image(
                slide.thumbnail(384),
                caption=f"{Path(path).name}: {w0} x {h0} px, "
                f"mpp {slide.mpp}, {len(slide.level_downsamples)} level(s)",
            )
            with c[1]:
                r = st.columns(4)
                level = r[0].selectbox(
                    "Level", list(range(len(slide.level_downsamples))), key="w_level"
                )
                size = r[1].selectbox("Region size", [256, 512, 1024], index=1, key="w_size")
                x = r[2].number_input("x (level-0 px)", 0, max(0, w0 - 1), w0 // 3, key="w_x")
                y = r[3].number_input("y (level-0 px)", 0, max(0, h0 - 1), h0 // 3, key="w_y")
                ds = slide.level_downsamples[level]
                rw = max(1, min(size, int((w0 - x) / ds)))  # stay inside the slide
                rh = max(1, min(size, int((h0 - y) / ds)))
                region = slide.read_region(int(x), int(y), rw, rh, level)
                st.image(region, caption=f"region at ({x}, {y}), level {level}")
