"""Figures: the standard figures from the store and catalog, exported at publication size."""

from __future__ import annotations

import io
import zipfile

import streamlit as st

from cellbench.app import ui
from cellbench.viz import figures

ui.header(
    "Figures",
    "Every standard figure of the workbench, from the metrics store and the "
    "sample table, as SVG / PDF / PNG at a journal column width, with its data.",
)

with ui.guard("The figures"):
    from cellbench.metrics import INSTANCE_PRESETS

    c = st.columns(4)
    preset = c[0].selectbox("Preset", INSTANCE_PRESETS, key="f_preset")
    metric = c[1].selectbox("Metric", ["pq", "aji", "dice1", "f1"], key="f_metric")
    size = c[2].selectbox("Size", list(figures.PUBLICATION_SIZES), key="f_size")
    fmt = c[3].selectbox("Format", ["svg", "pdf", "png"], key="f_fmt")

    @st.cache_data(show_spinner="Building figures ...", max_entries=8)
    def _figures(sig, preset: str, metric: str):
        return figures.standard_figures(ui.store(), ui.sample_table(), metric, preset)

    if not ui.listed("The figures"):
        st.stop()
    figs = _figures(ui.store_signature(), preset, metric)
    if not figs:
        st.info("Nothing to draw yet: no local samples and no runs.")
        st.stop()
    w, h = figures.PUBLICATION_SIZES[size]

    def bundle() -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, (fig, data) in figs.items():
                z.writestr(f"{name}.csv", figures.frame_bytes(data, "csv"))
                try:  # a figure too dense for this width goes at the next journal width
                    fw = figures.fitting_width(fig, w, h)
                except figures.FigureTooSmall as e:
                    z.writestr(f"{name}.txt", f"not drawn: {e}\n")
                    continue
                z.writestr(f"{name}.{fmt}", figures.export_figure(fig, fmt, fw, h))
        return buf.getvalue()

    st.download_button(
        f"Download all {len(figs)} figures ({fmt.upper()} + CSV, zip)",
        bundle,
        file_name=f"cellbench_figures_{fmt}.zip",
        mime="application/zip",
        key="f_all",
        type="primary",
    )
    name = st.selectbox("Preview", list(figs), key="f_pick")
    fig, data = figs[name]
    ui.show_figure(fig, data, key="f_one", name=name)
