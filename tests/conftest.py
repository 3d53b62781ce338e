"""Shared fixtures.

``shared_data`` is ``../shared/data`` (or ``CELLBENCH_SHARED_DATA``); tests using it skip with a
message when the folder is missing, as on a user's fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CELLBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED} (absent on this machine)")
    return SHARED


@pytest.fixture(scope="session")
def catalog(shared_data):
    from cellbench.data.catalog import load_catalog

    return load_catalog(REPO / "data_catalog.yaml", root=shared_data)


@pytest.fixture(scope="session")
def table(catalog):
    from cellbench.data.samples import sample_table

    return sample_table(catalog)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own empty workspace (store, user models, jobs), and no reference
    results unless it sets ``CELLBENCH_REFERENCE`` itself."""
    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CELLBENCH_REFERENCE", "")
    monkeypatch.setenv("CELLBENCH_PREFETCH", "0")  # no background work left at exit


@pytest.fixture
def data_env(shared_data, monkeypatch):
    """``CELLBENCH_DATA`` pointed at the shared data (model cards with ``data:`` weights)."""
    monkeypatch.setenv("CELLBENCH_DATA", str(shared_data))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(REPO / "data_catalog.yaml"))
    return shared_data


def tiny_checkpoint(folder, model_id: str = "tiny", n_types: int = 0, seed: int = 0, **card):
    """Save a small random-weight ``hovernet_lite`` checkpoint with its card; return the card."""
    import torch

    from cellbench.models.nets import build
    from cellbench.models.registry import save_checkpoint

    torch.manual_seed(seed)
    kwargs = {"n_types": n_types, "base": 8, "depth": 3}
    net = build("hovernet_lite", **kwargs)
    fields = {
        "id": model_id,
        "name": "tiny random hovernet_lite",
        "architecture": "hovernet_lite",
        "kwargs": kwargs,
        "input": {"channels": "rgb", "mpp": 0.25, "tile": 128, "halo": 16, "multiple_of": 8},
        "output": {"kind": "hovernet", "n_types": n_types},
        "postprocess": {"method": "hovernet"},
        "training": {"datasets": ["monuseg"], "notes": "random weights (tests)"},
        **card,
    }
    return save_checkpoint(net, folder, fields)


@pytest.fixture
def no_chromium_skip():
    """Skip (saying why) where figure export cannot run: kaleido needs a Chromium."""
    import shutil

    pytest.importorskip("kaleido", reason="kaleido is not installed")
    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        pytest.skip("figure export needs Chromium (apt-get install chromium)")
