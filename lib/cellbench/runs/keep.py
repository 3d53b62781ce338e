"""Keep a model run's predictions in the background, so that review never waits on a model.

A run of stored predictions reads them back at once; a model run keeps what its evaluation
predicted (:mod:`cellbench.runs.predcache`), but runs made elsewhere (the bundled reference
runs, a workspace whose cache was cleared) have nothing kept. The first look at such a run
(its error grid, confusion matrix or an opened sample) calls :func:`ensure`, which starts one
background job (:func:`cellbench.runs.jobs.submit_task`, kind ``keep``) that replays the run's
samples without a kept prediction, keeping each as it is made; the page shows the job's
progress (samples, rate, ETA) and draws from the kept copies as they arrive.

Replaying is the evaluation's own path (:meth:`~cellbench.runs.evaluate.Evaluation.replay`:
the same model, weights (checked by sha256), input scale, stain normalisation, tiling and
post-processing), so a kept prediction is the one that was scored.
"""

from __future__ import annotations

import time
from typing import Any

from cellbench.runs import predcache

#: The job entry: :func:`keep_job` drawing each sample's error thumbnail as it goes.
ENTRY = "cellbench.viz.review:keep_with_thumbnails"
KIND = "keep"


def needs_model(run: dict[str, Any]) -> bool:
    """Whether the run's predictions come from a model (else they are read back)."""
    params = run.get("parameters") or {}
    return isinstance(params, dict) and params.get("model") is not None


def missing(run: dict[str, Any], sample_ids) -> list[str]:
    """The samples of ``sample_ids`` whose prediction is neither stored nor kept."""
    if not needs_model(run):
        return []
    return [s for s in sample_ids if not predcache.has(run["run_id"], s)]


def active_job(run_id: str) -> dict[str, Any] | None:
    """The keep job of a run that is queued or running, if any (its :func:`job_status`)."""
    from cellbench.runs.jobs import list_jobs

    for j in list_jobs():
        if (
            j.get("kind") == KIND
            and (j.get("spec") or {}).get("run_id") == run_id
            and j.get("status") in ("queued", "loading", "running")
        ):
            return j
    return None


def last_job(run_id: str) -> dict[str, Any] | None:
    """The most recent keep job of a run, whatever its state (e.g. failed, with its error)."""
    from cellbench.runs.jobs import list_jobs

    mine = [
        j
        for j in list_jobs()
        if j.get("kind") == KIND and (j.get("spec") or {}).get("run_id") == run_id
    ]
    return max(mine, key=lambda j: j.get("created") or "", default=None)


def ensure(run: dict[str, Any], sample_ids) -> dict[str, Any] | None:
    """Start keeping the run's missing predictions unless that is done or under way.

    Returns the job's status (None when nothing is missing). A job that failed is not
    started again here (the page offers Retry: :func:`start`)."""
    todo = missing(run, sample_ids)
    if not todo:
        return None
    job = active_job(run["run_id"])
    if job is not None:
        return job
    prev = last_job(run["run_id"])
    if prev is not None and prev.get("status") in ("failed", "interrupted"):
        return prev
    return start(run, len(todo))


def start(run: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    """Submit a keep job for a run (:func:`keep_job`); returns its status."""
    from cellbench.runs.jobs import job_status, submit_task

    params = run.get("parameters") or {}
    label = f"keep predictions: {params.get('model')} → {run.get('test_dataset')}"
    job_id = submit_task(KIND, label, {"run_id": run["run_id"]}, ENTRY, total=total)
    return job_status(job_id)


def keep_job(job: dict[str, Any], report, should_stop, on_sample=None) -> dict[str, Any]:
    """Job body: replay the run's samples that have no kept prediction, keeping each one;
    ``on_sample(run, sample_id, catalog, store)`` after each (the app's entry draws its error
    thumbnail: :func:`cellbench.viz.review.keep_with_thumbnails`).

    Samples already kept (by the evaluation, or by an earlier job) are skipped, so a cancelled
    or killed job resumes where it stopped."""
    from cellbench.runs.evaluate import Evaluation
    from cellbench.runs.store import Store

    store = Store()
    run = store.get_run(job["spec"]["run_id"])
    report(status="loading", sample_id=None)
    ev = Evaluation.of_run(run, None, store)
    todo = [r for r in ev.records if not predcache.has(ev.run_id, r.sample_id)]
    report(status="running", done=0, total=len(todo))
    t0 = time.perf_counter()
    done = 0
    for rec, _sample, _pred in ev.replay(todo):  # each is kept as it is made
        if on_sample is not None:
            on_sample(run, rec.sample_id, ev.catalog, store)
        done += 1
        rate = done / max(time.perf_counter() - t0, 1e-9)
        report(
            done=done,
            sample_id=rec.sample_id,
            rate=round(rate, 3),
            eta_s=round((len(todo) - done) / rate, 1),
        )
        if should_stop():
            return {"status": "cancelled", "done": done}
    return {"status": "complete", "kept": done}
