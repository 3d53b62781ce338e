"""A lock per user dataset, so that two writers of one dataset never interleave.

``datasets add``, ``datasets remove`` and ``qupath import`` hold
``$CELLBENCH_HOME/locks/dataset-<id>.lock`` (``fcntl.flock``, released when the process
ends, even killed). A second writer waits up to ``wait`` seconds, then is refused with one
line naming the dataset and the holder. A workspace that cannot be written (read-only, full)
is one line too.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from cellbench.core import config
from cellbench.core.errors import CatalogError


@contextlib.contextmanager
def held(path: Path, wait: float, busy):
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created, holding ``pid N``) for the
    duration; when another process holds it past ``wait`` seconds, ``busy(holder)`` is raised
    (``holder``: what the file says, e.g. ``pid 42``)."""
    import fcntl

    f = open(path, "a+")  # noqa: SIM115 - held for the context's lifetime
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    raise busy(f.read().strip() or "another process") from None
                time.sleep(0.1)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield
    finally:
        f.close()


@contextlib.contextmanager
def dataset_lock(dataset_id: str, wait: float = 10.0):
    from cellbench.core.safety import check_name

    check_name(dataset_id, "dataset id", lambda msg: CatalogError(config.user_catalog_path(), msg))
    folder = config.home() / "locks"
    path = folder / f"dataset-{dataset_id}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as e:
        raise CatalogError(
            Path(getattr(e, "filename", None) or path),
            f"cannot write to the workspace ({e.strerror or e}): nothing was changed; fix "
            "permissions or free space and run the same command again",
        ) from None

    def busy(owner: str) -> CatalogError:
        return CatalogError(
            config.user_catalog_path(),
            f"dataset '{dataset_id}' is being changed by {owner}; nothing was changed: try "
            "again when it is done",
        )

    with held(path, wait, busy):
        yield
