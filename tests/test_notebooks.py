"""The researcher notebooks run end to end (nbclient) and save their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_saves_figures(path, data_env, no_chromium_skip, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    out = tmp_path / "figures"
    monkeypatch.setenv("CELLBENCH_FIGURES", str(out))
    # the committed reference results (notebook 03 reads them)
    monkeypatch.setenv("CELLBENCH_REFERENCE", str(REPO / "results" / "reference"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    svgs = list(out.glob("*.svg"))
    assert svgs and all(p.read_bytes().lstrip().startswith(b"<svg") for p in svgs)
    assert all(p.with_suffix(".pdf").read_bytes().startswith(b"%PDF-") for p in svgs)
