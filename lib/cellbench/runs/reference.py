"""The reference experiments: every bundled checkpoint on every local test set (issue 5).

They run through the ordinary evaluation machinery (:class:`cellbench.runs.evaluate.Evaluation`,
HoVer-Net preset, IoU 0.5) into a store, and :func:`export` writes the compact copy committed
under ``results/reference`` (one parquet part and the run record per run), which the app and
the notebooks read on a fresh clone without the data.

Experiments
-----------
``matrix``
    Single-dataset and fused checkpoints (:data:`MATRIX_MODELS`) x :data:`TEST_SETS`: the train
    x test matrix P(D_i, D_j), C_ij, ranking and fusion (seed 003).
``pair``
    The pretrain -> fine-tune pair across label levels (:data:`PAIR`, seed 002).
``centers``
    The center-held-out checkpoint on the MoNuSeg images of its held-out test centers (read
    from its card), reported per center (seed 000's protocol).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from cellbench.runs.evaluate import EvalSpec, Evaluation
from cellbench.runs.store import Store

MATRIX_MODELS: tuple[str, ...] = ("cb_monuseg", "cb_consep", "cb_fused")
PAIR: tuple[str, str] = ("cb_consep", "cb_consep_to_monuseg")
CENTERS_MODEL = "cb_monuseg_centers"
#: (dataset, split) of the test sets; dsb2018 is fluorescence, expected to fail on H&E models.
TEST_SETS: tuple[tuple[str, str | None], ...] = (
    ("monuseg", "test"),
    ("consep", "test"),
    ("cryonuseg", None),
    ("dsb2018", None),
)


def held_out_test_samples(model_id: str = CENTERS_MODEL) -> tuple[str, list[str]]:
    """``(dataset, sample ids)`` of the test centers recorded in a center-held-out card."""
    from cellbench.models.registry import get_model

    card = get_model(model_id)
    for ds, desc in card.training.splits.items():
        d = json.loads(desc)
        if d.get("protocol") == "center_held_out":
            return ds, list(d["test_samples"])
    raise KeyError(f"model '{model_id}' was not trained on a center-held-out split")


def specs(experiment: str | None = None) -> list[EvalSpec]:
    """The evaluation requests of one experiment (default: all, without repeats)."""
    out: list[EvalSpec] = []
    if experiment in (None, "matrix", "pair"):
        models = {
            None: (*MATRIX_MODELS, PAIR[1]),
            "matrix": MATRIX_MODELS,
            "pair": PAIR,
        }[experiment]
        out += [
            EvalSpec(dataset=d, split=s, model=m, preset="hovernet")
            for m in models
            for d, s in TEST_SETS
        ]
    if experiment in (None, "centers"):
        ds, samples = held_out_test_samples()
        out.append(EvalSpec(dataset=ds, model=CENTERS_MODEL, preset="hovernet", samples=samples))
    return out


def run(
    store: Store,
    experiment: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    catalog=None,
) -> list[str]:
    """Evaluate (or resume) every request of an experiment into ``store``; return run ids."""
    ids = []
    todo = specs(experiment)
    for k, spec in enumerate(todo):
        ev = Evaluation(spec, catalog=catalog, store=store)
        if progress:
            progress(k, len(todo), ev.run_id)
        ev.run()
        ids.append(ev.run_id)
    return ids


def run_ids(store: Store, experiment: str, catalog=None) -> list[str]:
    """The ids of an experiment's runs (as planned now; they need not be stored)."""
    return [Evaluation(s, catalog=catalog, store=store).run_id for s in specs(experiment)]


def export(store: Store, ids: list[str], dest: str | Path) -> Path:
    """Write a compact read-only copy of runs: ``dest/runs/<id>.json`` and one
    ``dest/metrics/<id>/part-0.parquet`` per run (sample and dataset rows). Replaces runs
    already in ``dest``; per-image result JSON (for re-aggregation) is left out."""
    from cellbench.core.atomic import write_bytes_atomic, write_json_atomic

    dest = Path(dest)
    for rid in ids:
        info = store.get_run(rid)
        if info.get("status") != "complete":
            raise ValueError(f"run '{rid}' is {info.get('status')}, not complete")
        info.pop("reference", None)
        info.pop("pid", None)
        df = store.scan([rid]).collect().sort(["level", "sample_id", "class", "metric"])
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd", compression_level=19, statistics=True)
        for old in (dest / "metrics" / rid).glob("part-*"):
            old.unlink()
        write_bytes_atomic(dest / "metrics" / rid / "part-0.parquet", buf.getvalue())
        write_json_atomic(dest / "runs" / f"{rid}.json", info)
    return dest
