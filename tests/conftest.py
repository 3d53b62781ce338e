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
    from cellbench.catalog import load_catalog

    return load_catalog(REPO / "data_catalog.yaml", root=shared_data)


@pytest.fixture(scope="session")
def table(catalog):
    from cellbench.samples import sample_table

    return sample_table(catalog)
