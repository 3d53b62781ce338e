"""Background jobs: one process per job, progress on disk, cancel, resume.

Evaluations (:func:`submit_job`) and other work run the same way (:func:`submit_task`, e.g.
``predict``, whose job body lives with its pipeline and is named by ``entry``). A job lives in
``$CELLBENCH_HOME/jobs/<job_id>/``:

``job.json``      the request (an :class:`~cellbench.runs.evaluate.EvalSpec`, or the spec of
                  another ``kind`` with its ``entry``), run id, pid, times;
``progress.json`` written atomically after each sample: done / total, current sample, ETA,
                  status (``queued``, ``loading`` (planning, loading the model, first
                  prediction), ``running``, ``complete``, ``failed``, ``cancelled``);
``cancel``        present when a cancel was requested (the worker stops before the next sample);
``log.txt``       the worker's output.

Any page or process reads a job's state with :func:`job_status` (after a reload too); a job
whose process died without finishing reads as ``interrupted``. Rows are committed by the
evaluation in whole-sample parts (see :mod:`cellbench.runs.store`), so a killed job loses no stored
rows, and :func:`resume_job` (or submitting the same request again) finishes it, skipping what
is stored. Two jobs never write the same run at once: the run's lock refuses the second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cellbench.core import config
from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import CellbenchError, DataError
from cellbench.core.safety import NAME_RE, check_name, read_json

FINAL = ("complete", "failed", "cancelled")


def jobs_dir() -> Path:
    return config.home() / "jobs"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read(path: Path) -> dict[str, Any]:
    """A job file's mapping; a missing or unreadable one reads as empty."""
    try:
        doc = read_json(path)
    except DataError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _create(fields: dict[str, Any], progress: dict[str, Any], start: bool, wait: bool) -> str:
    """A new job folder with ``job.json`` (``fields`` plus id, creation time and the paths the
    worker needs) and ``progress.json``; its worker is started when ``start``."""
    job_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    d = jobs_dir() / job_id
    d.mkdir(parents=True)
    job = {
        "job_id": job_id,
        "created": _now(),
        "catalog": str(config.catalog_path()),
        "data_root": str(config.data_root()),
        "home": str(config.home()),
        "reused": False,
        **fields,
    }
    write_json_atomic(d / "job.json", job)
    write_json_atomic(d / "progress.json", {**progress, "updated": _now()})
    if start:
        _start(d, wait)
    return job_id


def submit_job(spec, flush_every: int = 16, wait: bool = False) -> str:
    """Check a request, start its worker process and return the job id.

    The request is planned first (dataset, samples, model, preset are checked), so a bad
    request fails here with a clear error instead of in the background. A request evaluated
    before is recorded as a complete job and computes nothing.
    """
    from cellbench.runs.evaluate import Evaluation

    ev = Evaluation(spec)
    prev = ev.store.get_run(ev.run_id) if ev.run_id in ev.store.run_ids() else {}
    reused = prev.get("status") == "complete" and not ev._todo()
    n = len(ev.records)
    fields = {
        "run_id": ev.run_id,
        "label": job_label(spec, ev.preset),
        "spec": asdict(spec),
        "flush_every": flush_every,
        "catalog": str(ev.catalog.path),
        "reused": reused,
    }
    progress = {"status": "complete" if reused else "queued", "done": n if reused else 0}
    return _create(fields, {**progress, "total": n}, not reused, wait)


def submit_task(
    kind: str,
    label: str,
    spec: dict[str, Any],
    entry: str,
    total: int | None = None,
    wait: bool = False,
) -> str:
    """Run another kind of work as a background job (e.g. ``predict``): ``entry`` is
    ``module:function`` of a cellbench module, called in the job's process as
    ``function(job, report, should_stop)`` where ``report(**fields)`` updates the progress
    (``status``, ``done``, ``total``, ``sample_id``, ``rate``, ``eta_s``) and
    ``should_stop()`` says a cancel was requested; it returns the final fields (``status`` and
    anything to show, e.g. the files written). Returns the job id."""
    _entry(entry)  # refused here, not in the background
    fields = {"kind": kind, "label": label, "spec": spec, "entry": entry}
    return _create(fields, {"status": "queued", "done": 0, "total": total}, True, wait)


def _entry(entry: str):
    """The function an entry names (``cellbench.<module>:<function>`` only)."""
    import importlib

    module, _, name = entry.partition(":")
    if not module.startswith("cellbench.") or not name.isidentifier():
        raise CellbenchError(f"job entry {entry!r}: give cellbench.<module>:<function>")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise CellbenchError(f"job entry {entry!r}: no such function")
    return fn


def job_label(spec, preset: str | None = None) -> str:
    """``model → dataset / split / preset`` of a request (an EvalSpec or its dict)."""
    g = spec.get if isinstance(spec, dict) else lambda k: getattr(spec, k, None)
    src = g("model") or f"predictions:{Path(str(g('predictions'))).name}"
    part = g("test_set") or g("split") or "all samples"
    n = f" (first {g('limit')})" if g("limit") else ""
    return f"{src} → {g('dataset')} / {part}{n} / {preset or g('preset') or 'default preset'}"


def _start(d: Path, wait: bool) -> None:
    job = _read(d / "job.json")
    env = dict(os.environ)
    env.update(
        CELLBENCH_HOME=job["home"],
        CELLBENCH_DATA=job["data_root"],
        CELLBENCH_CATALOG=job["catalog"],
    )
    (d / "cancel").unlink(missing_ok=True)
    with open(d / "log.txt", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cellbench.runs.jobs", str(d)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    job["pid"] = proc.pid
    job["started"] = _now()
    write_json_atomic(d / "job.json", job)
    if wait:
        proc.wait()


def _job_dir(job_id: str) -> Path:
    check_name(job_id, "job id", KeyError)
    d = jobs_dir() / job_id
    if not (d / "job.json").is_file():
        raise KeyError(f"no job '{job_id}' in {jobs_dir()}")
    return d


def job_status(job_id: str) -> dict[str, Any]:
    """The job's request and progress; ``interrupted`` when its process died unfinished."""
    d = _job_dir(job_id)
    job = _read(d / "job.json")
    prog = _read(d / "progress.json")
    status = prog.get("status", "queued")
    if status not in FINAL and not _alive(job.get("pid")):
        status = "interrupted"
    return {**job, **prog, "status": status, "cancel_requested": (d / "cancel").exists()}


def list_jobs() -> list[dict[str, Any]]:
    """Every job's status, newest first."""
    d = jobs_dir()
    ids = sorted((p.parent.name for p in d.glob("*/job.json")), reverse=True) if d.is_dir() else []
    return [job_status(i) for i in ids if NAME_RE.match(i)]


def cancel_job(job_id: str, kill: bool = False) -> None:
    """Ask the job to stop before its next sample (``kill``: SIGTERM now; stored rows stay)."""
    d = _job_dir(job_id)
    (d / "cancel").touch()
    pid = _read(d / "job.json").get("pid")
    if kill and isinstance(pid, int) and _is_worker(pid, d) and _alive(pid):
        os.kill(pid, signal.SIGTERM)


def _is_worker(pid: int, d: Path) -> bool:
    """True when ``pid`` is this job's worker process (never signal anything else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return b"cellbench.runs.jobs" in args and str(d).encode() in args


def resume_job(job_id: str, wait: bool = False) -> None:
    """Start an interrupted, failed or cancelled job again; stored samples are skipped."""
    st = job_status(job_id)
    if st["status"] in ("running", "queued", "loading"):
        raise CellbenchError(f"job '{job_id}' is still {st['status']}")
    d = _job_dir(job_id)
    write_json_atomic(
        d / "progress.json", {**_read(d / "progress.json"), "status": "queued", "updated": _now()}
    )
    _start(d, wait)


def wait_job(job_id: str, timeout: float = 600.0, poll: float = 0.2) -> dict[str, Any]:
    """Block until the job is final or interrupted (or ``timeout`` seconds pass)."""
    t0 = time.monotonic()
    while True:
        st = job_status(job_id)
        if st["status"] in (*FINAL, "interrupted") or time.monotonic() - t0 > timeout:
            return st
        time.sleep(poll)


def _worker(d: Path) -> int:
    """Body of the job process: run the evaluation, writing progress after each sample."""
    from cellbench.runs.evaluate import EvalSpec, Evaluation

    job = _read(d / "job.json")
    prog_path = d / "progress.json"

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    def progress(p) -> None:
        write_json_atomic(
            prog_path,
            {
                "status": p.status,
                "done": p.done,
                "total": p.total,
                "sample_id": p.sample_id,
                "eta_s": p.eta_s,
                "rate": p.rate,
                "run_id": p.run_id,
                "updated": _now(),
            },
        )

    write_json_atomic(prog_path, {**_read(prog_path), "status": "loading", "updated": _now()})
    if job.get("entry"):
        return _run_entry(job, prog_path, d)
    try:
        ev = Evaluation(EvalSpec(**job["spec"]))
        final = ev.run(
            progress=progress,
            should_stop=(d / "cancel").exists,
            flush_every=job.get("flush_every", 16),
        )
        write_json_atomic(
            prog_path,
            {
                **_read(prog_path),
                "status": final["status"],
                "done": final.get("n_done"),
                "total": final["n_samples"],
                "sample_id": None,
                "eta_s": 0.0,
                "updated": _now(),
            },
        )
        return 0
    except KeyboardInterrupt:
        write_json_atomic(prog_path, {**_read(prog_path), "status": "cancelled", "updated": _now()})
        return 1
    except Exception as e:  # noqa: BLE001 - recorded for the user, job ends
        write_json_atomic(
            prog_path,
            {
                **_read(prog_path),
                "status": "failed",
                "error": f"{type(e).__name__}: {e}",
                "updated": _now(),
            },
        )
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run_entry(job: dict[str, Any], prog_path: Path, d: Path) -> int:
    """Body of a job of another kind (:func:`submit_task`): its entry function."""

    def report(**fields: Any) -> None:
        write_json_atomic(prog_path, {**_read(prog_path), **fields, "updated": _now()})

    try:
        final = _entry(job["entry"])(job, report, (d / "cancel").exists)
        prog = _read(prog_path)
        report(**final, done=prog.get("total") or prog.get("done"), eta_s=0.0)
        return 0
    except KeyboardInterrupt:
        report(status="cancelled")
        return 1
    except Exception as e:  # noqa: BLE001 - recorded for the user, job ends
        report(status="failed", error=f"{type(e).__name__}: {e}")
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))
