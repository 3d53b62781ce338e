"""Where data and results live.

- ``CELLBENCH_DATA``: the data root. Catalog locations are relative to it. Default ``./data``
  (relative to the current working directory). The Makefile and ``.ci/run`` point it at
  ``../shared/data`` when that folder exists.
- ``CELLBENCH_HOME``: the workspace for results, user catalogs and jobs. Default ``./workspace``.
- ``CELLBENCH_REFERENCE``: a read-only store of reference results shown with the workspace's
  runs. Default ``results/reference`` of the checkout; empty = none.
- ``CELLBENCH_WORKERS``: at most this many CPU cores for the work cellbench spreads itself
  (scoring threads, forked evaluation workers); default all the process may use.
- ``CELLBENCH_CATALOG``: the catalog file. Default: ``data_catalog.yaml`` in the working directory
  if present, else the
  one at the root of the checkout the package was installed from.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The package folder (``lib/cellbench``).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: The checkout root (``lib/cellbench/../..``); the package is installed editable from it.
REPO_DIR = PACKAGE_DIR.parent.parent


def cpu_workers() -> int:
    """CPU cores this process may use, at most ``CELLBENCH_WORKERS`` when that is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    want = os.environ.get("CELLBENCH_WORKERS", "").strip()
    return max(1, min(n, int(want))) if want.isdigit() else n


def data_root() -> Path:
    """Return the data root (``CELLBENCH_DATA``, default ``./data``), absolute."""
    return Path(os.environ.get("CELLBENCH_DATA", "data")).expanduser().resolve()


def home() -> Path:
    """Return the workspace folder (``CELLBENCH_HOME``, default ``./workspace``), absolute."""
    return Path(os.environ.get("CELLBENCH_HOME", "workspace")).expanduser().resolve()


def catalog_path() -> Path:
    """Return the catalog file in use (see module docstring for the search order)."""
    env = os.environ.get("CELLBENCH_CATALOG")
    if env:
        return Path(env).expanduser().resolve()
    local = Path("data_catalog.yaml")
    if local.exists():
        return local.resolve()
    return REPO_DIR / "data_catalog.yaml"


def reference_store() -> Path | None:
    """The reference results store (``CELLBENCH_REFERENCE``, default ``results/reference``)."""
    env = os.environ.get("CELLBENCH_REFERENCE")
    if env is not None:
        return Path(env).expanduser().resolve() if env else None
    return REPO_DIR / "results" / "reference"


def user_catalog_path() -> Path:
    """The user catalog (``$CELLBENCH_HOME/user_catalog.yaml``), merged into the catalog."""
    return home() / "user_catalog.yaml"


def user_data_root() -> Path:
    """Where imported user datasets are kept (``$CELLBENCH_HOME/user_data``)."""
    return home() / "user_data"
