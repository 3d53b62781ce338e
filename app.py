"""cellbench workbench: the entry point (``make app`` or ``streamlit run app.py``).

Declares the pages; each page is a thin script under ``pages/`` that calls ``cellbench``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent / "pages"

PAGES = [
    ("0_Home.py", "Home", "", ":material/home:"),
    ("1_Catalog.py", "Catalog", "Catalog", ":material/dataset:"),
    ("2_Dataset_explorer.py", "Dataset explorer", "Dataset_explorer", ":material/image_search:"),
    ("3_Evaluate.py", "Evaluate", "Evaluate", ":material/play_circle:"),
    ("8_Predict.py", "Predict", "Predict", ":material/center_focus_strong:"),
    ("4_Results.py", "Results", "Results", ":material/monitoring:"),
    ("5_Cross-dataset.py", "Cross-dataset", "Cross-dataset", ":material/grid_on:"),
    ("6_Figures.py", "Figures", "Figures", ":material/insert_chart:"),
    ("7_QuPath.py", "QuPath", "QuPath", ":material/share:"),
]

nav = st.navigation(
    [st.Page(HERE / f, title=t, url_path=u or None, icon=i, default=not u) for f, t, u, i in PAGES]
)
nav.run()
