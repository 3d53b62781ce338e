"""Where the per-sample work of a run is done: in this process (default) or on a Dask cluster.

One pipeline (source -> inference -> post-processing -> scoring -> store) with the executor
pluggable: an executor only maps a function over chunks of work, in order; the store is still
written by the process that runs the evaluation (one writer, so the store's guarantees hold
unchanged), and results are identical whichever executor computed them.

Why Dask (``distributed``) rather than Ray: it is pure Python (two small wheels, no native
daemon), a local cluster of worker processes starts inside the calling process in seconds
(CI's 2-core machine runs one), and ``Client(address)`` joins an existing cluster
(``dask scheduler`` / ``dask worker``, or an HPC deployment such as dask-jobqueue) with the
same code. Workers must see the same data root, catalog and workspace paths (a shared file
system), since they read images and keep predictions where the evaluation would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cellbench.core.errors import CellbenchError

EXECUTORS = ("local", "dask")


class LocalExecutor:
    """In-process, in order (the default)."""

    name = "local"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on a Dask cluster: an existing one at ``address``, else a local cluster of
    ``workers`` processes (one thread each) started for this executor and closed with it.
    Results come back in submission order; at most ``2 x workers`` tasks are in flight."""

    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2):
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - a dependency of cellbench
            raise CellbenchError("the dask executor needs `pip install distributed`") from None
        self._cluster = None
        if address:
            try:
                self.client = Client(address, timeout="20s")
            except OSError as e:
                raise CellbenchError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        else:
            import logging

            # on this machine only (localhost), no dashboard; the cluster's own chatter
            # (port-in-use notes, "Worker process still alive ... killing" at close) is not
            # the user's business: only errors are logged
            self._cluster = LocalCluster(
                n_workers=max(1, int(workers)),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self._cluster)
        n = len(self.client.scheduler_info().get("workers", {})) or int(workers)
        self.window = max(2, 2 * n)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pending = []
        for item in items:
            pending.append(self.client.submit(fn, item, pure=False))
            while len(pending) >= self.window:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def worker_device(device: str) -> str:
    """The device a worker process uses for ``device``: on a worker of a Dask cluster that
    sees several GPUs, ``cuda`` means one GPU per worker (``cuda:<k>``, ``k`` from the
    worker's name: a local cluster's workers are named 0..n-1, so N workers on N GPUs use
    them all); everywhere else ``device`` itself."""
    if device != "cuda":
        return device
    try:
        import torch

        n = torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a dependency
        return device
    if n <= 1:
        return device
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):  # not in a Dask worker
        return device
    k = name if isinstance(name, int) else int(hashlib.sha256(str(name).encode()).hexdigest(), 16)
    return f"cuda:{k % n}"


#: Samples from which a local run of stored predictions is spread over forked workers.
FORK_MIN_ITEMS = 48


def fork_workers(n_items: int) -> int:
    """Worker processes that pay for ``n_items`` samples of light work (scoring stored
    predictions) here: the usable CPU cores, or 0 (work in this process) below
    :data:`FORK_MIN_ITEMS` samples, on one core, off Linux, outside the main thread or beside
    non-daemon threads (a job of the app: ``fork`` would copy its server's locks; a progress
    display's daemon thread is fine, the workers never print), or with
    ``CELLBENCH_WORKERS=1``."""
    import sys
    import threading

    me = threading.current_thread()
    others = [t for t in threading.enumerate() if t is not me]
    if n_items < FORK_MIN_ITEMS or sys.platform != "linux":
        return 0
    if me is not threading.main_thread() or not all(t.daemon for t in others):
        return 0  # e.g. a job of the app: its server's threads would be forked too
    from cellbench.core.config import cpu_workers

    cores = cpu_workers()
    return cores if cores > 1 else 0


_FORKED: Callable[[Any], Any] | None = None


def _call_forked(item: Any) -> Any:
    assert _FORKED is not None
    return _FORKED(item)


def forked_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``fn`` over ``items`` in ``workers`` forked processes, results in order.

    The workers are forks of this process: they share its loaded catalog, readers and
    imports (nothing is rebuilt), receive the items and send the results back pickled. Call
    it after the work's lazy imports have run here (a fork copies no other thread, so an
    import lock held elsewhere cannot stall a worker); closing the iterator early stops the
    workers."""
    import multiprocessing

    global _FORKED
    _FORKED = fn
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_call_forked, items)
    finally:
        _FORKED = None


def get_executor(name: str = "local", address: str | None = None, workers: int = 2):
    """An executor by name (``local`` or ``dask``)."""
    if name == "local":
        if address:
            raise CellbenchError("--address needs --executor dask")
        return LocalExecutor()
    if name == "dask":
        return DaskExecutor(address, workers)
    raise CellbenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
