"""The first listing of the local data, in a background process.

Listing a dataset reads every annotation file once (object counts, image sizes); on the shared
data the whole catalog takes ~40 s the first time, after which the record cache
(:mod:`cellbench.data.record_cache`) answers in milliseconds. So that a first start of the app
is usable at once, :func:`start` lists the datasets whose records are not cached in a
separate, low-priority process (one per workspace, catalog and data root), while pages show
what is cached and :func:`status` says how far the listing is.

The process writes ``$CELLBENCH_HOME/cache/records/listing.json`` after each dataset:
``{"pid", "catalog", "root", "current", "done": {dataset: null | error message}, "finished"}``.
A dataset whose listing fails is reported there (its error is what ``cellbench samples`` would
print); failed datasets, and those a process that died left, are retried only when asked
(:func:`start` with ``retry``: the app does once per server process), never in a loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import DataError
from cellbench.core.safety import read_json
from cellbench.data import record_cache


def _state_path():
    return record_cache.cache_dir() / "listing.json"


def _state() -> dict[str, Any]:
    try:
        doc = read_json(_state_path())
    except DataError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (finished child of this process) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def pending(catalog) -> list[str]:
    """Available datasets whose records are not cached yet, in catalog order."""
    return [
        d.id
        for d in catalog
        if catalog.is_available(d) and record_cache.peek(catalog, d.id) is None
    ]


def status(catalog) -> dict[str, Any]:
    """How far the listing is: ``total`` available datasets, ``pending`` (not cached, and
    not failed in the last listing), ``failed`` (``{dataset: error}`` of this catalog's last
    listing, still not cached), ``current`` (the dataset being listed) and ``running``."""
    st = _state()
    same = st.get("catalog") == str(catalog.path) and st.get("root") == str(catalog.root)
    done = st.get("done") if same and isinstance(st.get("done"), dict) else {}
    running = same and not st.get("finished") and _alive(st.get("pid"))
    left = pending(catalog)
    failed = {k: v for k, v in done.items() if v and k in left}
    if same and not running and not st.get("finished"):  # the process died: no respawn loop
        why = "the listing process stopped before listing it (run `cellbench samples` to see why)"
        failed.update({d: why for d in left if d not in failed})
    todo = [d for d in left if d not in failed]
    return {
        "total": sum(catalog.is_available(d) for d in catalog),
        "pending": todo,
        "failed": failed,
        "current": st.get("current") if running else None,
        "running": running,
    }


def start(catalog, retry: bool = False) -> dict[str, Any]:
    """Start the background listing when datasets are pending and none runs; its status.
    ``retry``: datasets that failed in the last listing are listed again (e.g. once per
    start of the app: the data may have been fixed since)."""
    now = status(catalog)
    if retry and not now["running"]:
        now = {**now, "pending": [*now["pending"], *now["failed"]], "failed": {}}
    if now["running"] or not now["pending"]:
        return now
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellbench.data.listing", str(catalog.path), str(catalog.root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives a server restart; never holds the server's terminal
    )
    state = {"pid": proc.pid, "catalog": str(catalog.path), "root": str(catalog.root)}
    write_json_atomic(path, {**state, "current": now["pending"][0], "done": {}})
    return {**now, "running": True, "current": now["pending"][0]}


def list_all(catalog) -> None:
    """List every pending dataset here, one after the other, writing the state file after
    each (the body of the background process; called directly where no background work is
    wanted, e.g. tests)."""
    from cellbench.data.samples import records

    state = {"pid": os.getpid(), "catalog": str(catalog.path), "root": str(catalog.root)}
    state["done"] = {}
    for ds in pending(catalog):
        write_json_atomic(_state_path(), {**state, "current": ds})
        try:
            records(catalog, ds)
            state["done"][ds] = None
        except Exception as e:  # noqa: BLE001 - reported per dataset, the others go on
            state["done"][ds] = f"{type(e).__name__}: {e}"
    write_json_atomic(_state_path(), {**state, "current": None, "finished": True})


def main(argv: list[str]) -> int:
    """The listing process: the catalog ``argv[0]`` under the data root ``argv[1]``."""
    from cellbench.data.catalog import load_catalog

    if hasattr(os, "nice"):
        os.nice(10)  # the server's pages go first
    list_all(load_catalog(argv[0], argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
