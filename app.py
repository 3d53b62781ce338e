"""cellbench workbench: entry page (overview of the catalog).

Run with ``make app`` (or ``streamlit run app.py``). Pages stay thin: they call ``cellbench``.
"""

from __future__ import annotations

import streamlit as st

from cellbench import config
from cellbench.errors import CellbenchError

st.set_page_config(page_title="cellbench", layout="wide")
st.title("cellbench")
st.caption("Multi-source cell and nucleus datasets: catalog, evaluation, comparison, QuPath.")


@st.cache_data(show_spinner="Reading the catalog and local data ...")
def _catalog_rows(cat_path: str, root: str) -> list[dict]:
    """Summary rows; cached per catalog file and data root."""
    from cellbench.catalog import load_catalog
    from cellbench.cli import catalog_rows

    return catalog_rows(load_catalog(cat_path, root))


cat_path, root = str(config.catalog_path()), str(config.data_root())
try:
    rows = _catalog_rows(cat_path, root)
except CellbenchError as e:
    st.error(f"The catalog could not be read: {e}")
    st.stop()

n_avail = sum(r["available"] for r in rows)
c1, c2, c3 = st.columns(3)
c1.metric("Datasets in catalog", len(rows))
c2.metric("Available locally", n_avail)
c3.metric("Local samples", sum(r["n_samples"] for r in rows))
st.caption(f"Catalog: `{cat_path}` · data root: `{root}` (set `CELLBENCH_DATA` to change it)")

st.dataframe(
    [
        {
            "id": r["id"],
            "name": r["name"],
            "available": r["available"],
            "samples": r["n_samples"],
            "stain": ", ".join(r["stain"]),
            "modality": r["modality"],
            "organs": ", ".join(r["organs"]),
            "tasks": ", ".join(r["tasks"]),
            "license": r["license"],
            "how to obtain": r["obtain"] or "",
        }
        for r in rows
    ],
    hide_index=True,
    use_container_width=True,
)
