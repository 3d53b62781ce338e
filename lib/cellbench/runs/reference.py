"""The reference experiments: the bundled checkpoints on the local test sets (issues 5, 16).

They run through the ordinary evaluation machinery (:class:`cellbench.runs.evaluate.Evaluation`)
into a store, and :func:`export` writes the compact copy committed under ``results/reference``
(one parquet part and the run record per run), which the app and the notebooks read on a fresh
clone without the data.

Experiments
-----------
``matrix``
    Single-dataset and fused checkpoints of two model families (:data:`MATRIX_MODELS`:
    ``hovernet_lite`` and ``unet_lite``) x the test split of every local nucleus dataset
    (:data:`TEST_SETS`, HoVer-Net preset): the train x test matrix P(D_i, D_j) and C_ij (seed
    003), and per TCGA center (:data:`TCGA_DATASETS`).
``unified``
    The same checkpoints on the members of the unified test set :data:`UNIFIED` (every local
    H&E nucleus dataset, NucFuse-test's rule) where those are not a whole test split already
    (MoNuSAC, GBM): with the matrix runs, the ranking and top-k fusion (seed 003).
``pair``
    The pretrain -> fine-tune pair across label levels (:data:`PAIR`, seed 002): CoNSeP's 4
    classes -> MoNuSeg's nuclei.
``levels``
    The pair across label levels with MoNuSAC's classes (:data:`LEVELS`): a network with 6
    leaf classes pretrained on CoNSeP, which labels lymphocytes, macrophages and neutrophils
    together one level up (inflammatory), fine-tuned on MoNuSAC (leaf level); the pair trained
    twice, with the focal Tversky loss in the literal and in the per-class form; with the
    MoNuSAC-only model for comparison, on MoNuSAC's test split (mPQ, per-class PQ, F_t).
``stain``
    Seed 003's stain experiment (:data:`STAIN`): no normalisation vs Macenko normalisation vs
    stain augmentation, per training set, on every test split.
``cytology``
    The Pap-smear models with the ISBI 2014 challenge protocol (:data:`CYTOLOGY`): EDF nuclei
    and overlapping whole cells.
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

#: Models trained on one dataset each (the rows of the ranking).
SINGLE_MODELS: tuple[str, ...] = ("cb_monuseg", "cb_consep", "cb_gbm", "cb_monusac")
#: Models trained on several datasets merged: the top-k prefixes of the ranking on
#: :data:`UNIFIED` (k = 2..4) and the first two-dataset model (MoNuSeg + CoNSeP).
FUSED_MODELS: tuple[str, ...] = ("cb_fused", "cb_fused_top2", "cb_fused_top3", "cb_fused_top4")
#: The second model family (``unet_lite``: U-Net + distance-transform watershed, class-agnostic)
#: on the same training sets, and its top-2 fusion (the first two datasets of the overall
#: order, the ranking by mean PQ over both families).
UNET_MODELS: tuple[str, ...] = (
    "cb_unet_monuseg",
    "cb_unet_consep",
    "cb_unet_gbm",
    "cb_unet_monusac",
    "cb_unet_fused_top2",
)
MATRIX_MODELS: tuple[str, ...] = (*SINGLE_MODELS, *FUSED_MODELS, *UNET_MODELS)
#: Seed 003's stain experiment (Fig. 8): per training set, the U-Net recipe with neither stain
#: normalisation nor stain jitter (``plain``), with Macenko normalisation (``macenko``), and with
#: HED stain jitter (the family's single-dataset model: ``augment``).
STAIN: dict[str, dict[str, str]] = {
    ds: {
        "plain": f"cb_unet_{ds}_plain",
        "macenko": f"cb_unet_{ds}_macenko",
        "augment": f"cb_unet_{ds}",
    }
    for ds in ("monuseg", "consep")
}
PAIR: tuple[str, str] = ("cb_consep", "cb_consep_to_monuseg")
#: Pretrain (CoNSeP at the inflammatory level) -> fine-tune (MoNuSAC, leaf level), with the
#: focal Tversky term in seed 002's literal (alpha-free) form and in its per-class form
#: (``_pc``), and the MoNuSAC-only model trained from scratch.
LEVELS: tuple[str, ...] = (
    "cb_consep_c6",
    "cb_consep_c6_to_monusac",
    "cb_consep_c6_pc",
    "cb_consep_c6_pc_to_monusac",
    "cb_monusac",
)
CENTERS_MODEL = "cb_monuseg_centers"
#: (dataset, split) of the test sets; dsb2018 is fluorescence, expected to fail on H&E models.
TEST_SETS: tuple[tuple[str, str | None], ...] = (
    ("monuseg", "test"),
    ("consep", "test"),
    ("gbm", "test"),
    ("monusac", "test"),
    ("cryonuseg", None),
    ("dsb2018", None),
)
#: The unified test set of the ranking and fusion (a committed version: its members never
#: change under the reference runs).
UNIFIED = "unified-he@v1"
#: Datasets whose test splits hold TCGA slides, for the per-center table.
TCGA_DATASETS: tuple[str, ...] = ("monuseg", "monusac", "gbm")
#: (model, dataset, split) under the ISBI 2014 protocol.
CYTOLOGY: tuple[tuple[str, str, str], ...] = (
    ("cb_isbi_nuclei", "isbi2014_edf", "test"),
    ("cb_isbi_cells", "isbi2014_synthetic", "test"),
)
EXPERIMENTS: tuple[str, ...] = (
    "matrix",
    "unified",
    "pair",
    "levels",
    "stain",
    "cytology",
    "centers",
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


def unified_datasets(catalog=None) -> list[str]:
    """Datasets of :data:`UNIFIED` whose members are not exactly a whole test split of
    :data:`TEST_SETS` (those need runs of their own; the others share the matrix runs)."""
    from cellbench.data.readers import get_reader
    from cellbench.data.record_cache import records_of
    from cellbench.data.testsets import resolve

    if catalog is None:
        from cellbench.data.catalog import load_catalog

        catalog = load_catalog()
    ts = resolve(UNIFIED, catalog)
    split = dict(TEST_SETS)
    out = []
    for d in ts.datasets:
        recs = records_of(get_reader(catalog, d))
        whole = sorted(r.sample_id for r in recs if split.get(d, "-") in (None, r.split))
        if d not in split or whole != ts.sample_ids(d):
            out.append(d)
    return out


def specs(experiment: str | None = None, catalog=None) -> list[EvalSpec]:
    """The evaluation requests of one experiment (default: all, without repeats)."""
    if experiment is not None and experiment not in EXPERIMENTS:
        raise KeyError(f"unknown experiment '{experiment}' (choose {', '.join(EXPERIMENTS)})")
    want = EXPERIMENTS if experiment is None else (experiment,)
    out: list[EvalSpec] = []

    def add(models, tests, preset: str = "hovernet", **kw) -> None:
        for m in models:
            for d, sp in tests:
                spec = EvalSpec(dataset=d, split=sp, model=m, preset=preset, **kw)
                if spec not in out:
                    out.append(spec)

    if "matrix" in want:
        add(MATRIX_MODELS, TEST_SETS)
    if "unified" in want:
        add(MATRIX_MODELS, [(d, None) for d in unified_datasets(catalog)], test_set=UNIFIED)
    if "pair" in want:
        add(PAIR, TEST_SETS)
    if "levels" in want:
        add(LEVELS, [("monusac", "test"), ("consep", "test")])
    if "stain" in want:
        add([m for arms in STAIN.values() for m in arms.values()], TEST_SETS)
    if "cytology" in want:
        for m, d, sp in CYTOLOGY:
            add([m], [(d, sp)], preset="isbi2014")
    if "centers" in want:
        ds, samples = held_out_test_samples()
        add([CENTERS_MODEL], [(ds, None)], samples=samples)
    return out


def run(
    store: Store,
    experiment: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    catalog=None,
) -> list[str]:
    """Evaluate (or resume) every request of an experiment into ``store``; return run ids."""
    ids = []
    todo = specs(experiment, catalog)
    for k, spec in enumerate(todo):
        ev = Evaluation(spec, catalog=catalog, store=store)
        if progress:
            progress(k, len(todo), ev.run_id)
        ev.run()
        ids.append(ev.run_id)
    return ids


def run_ids(store: Store, experiment: str, catalog=None) -> list[str]:
    """The ids of an experiment's runs (as planned now; they need not be stored)."""
    return [Evaluation(s, catalog=catalog, store=store).run_id for s in specs(experiment, catalog)]


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


def prune(dest: str | Path, keep: list[str]) -> list[str]:
    """Remove the runs of ``dest`` that are not in ``keep`` (superseded reference runs: an
    older code or checkpoint version of the same request); returns the removed ids."""
    import shutil

    dest = Path(dest)
    removed = []
    for p in sorted((dest / "runs").glob("*.json")):
        if p.stem not in keep:
            p.unlink()
            shutil.rmtree(dest / "metrics" / p.stem, ignore_errors=True)
            removed.append(p.stem)
    return removed
