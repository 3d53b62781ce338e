"""Evaluation runs: predictions (from a model or stored) scored sample by sample into the store.

A run is identified by what it evaluates: model (id and weights sha256) or stored predictions,
dataset, split, sample selection, preset and its parameters, and the cellbench version. The same
request gives the same ``run_id``, so evaluating again resumes an interrupted run (stored samples
are skipped) and a complete run is not recomputed.

Per sample, the rows written are every scalar of the metrics engine's result (class ``all``),
per-class values (class = the test dataset's class name), values at each IoU threshold of a
range (``pq@0.75``), and HoVer-Net type classification (``f_d``, ``type_acc``, per-class
``f_t``). When every sample is stored, the dataset-level figures of the preset (its own
averaging: mean over images, pooled counts, mPQ+ ...) are added with ``level = dataset``.

Tasks: datasets with instance maps are scored with the instance presets (default
``hovernet``); point datasets with the point presets (default ``ocelot``), a model's instances
becoming centroid points scored by their mean foreground probability.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import cellbench
from cellbench.core import config, hashing
from cellbench.core.errors import CellbenchError, DataError
from cellbench.data.catalog import Catalog, load_catalog
from cellbench.data.predictions import (
    INSTANCE_SUFFIXES,
    prediction_files,
    prediction_hash,
    prediction_stat,
    read_prediction,
    sha256_file,
)
from cellbench.data.readers import get_reader
from cellbench.data.record_cache import records_of
from cellbench.data.sample import Objects, Points
from cellbench.metrics import aggregate_task, instance_scores, point_scores, semantic_scores
from cellbench.metrics.instance import parse_thresholds
from cellbench.metrics.presets import get_preset
from cellbench.runs import predcache
from cellbench.runs.store import (
    GROUP_KEYS,
    Store,
    StoreWriteError,
    coverage_of,
    frame,
    sample_set_id,
)


@dataclass
class EvalSpec:
    """What to evaluate.

    Attributes
    ----------
    dataset, split
        Test dataset id and split (None: every sample).
    model
        A registered model id; or None with ``predictions`` set.
    predictions
        A folder of instance maps named by sample id, or the name of a prediction set stored
        with the dataset (e.g. OCELOT's ``fold0``).
    preset
        Metric convention (default: ``hovernet`` for instances, ``ocelot`` for points).
    iou
        IoU threshold or range (``"0.5:0.95"``) for instance presets.
    radius_um
        Point matching radius in microns (default: the preset's radius in pixels).
    samples, limit
        Evaluate only these sample ids / the first ``limit`` samples (part of the run's id).
    task
        ``instances``, ``points`` or ``semantic`` (class masks); default: ``semantic`` for a
        semantic preset, else the dataset's kind (instances where it has instance maps).
    test_set
        A stored composite test set (``nucfuse-test``, ``name@vN``; ``unified`` is
        ``nucfuse-test``): evaluate exactly its members of ``dataset`` (``split`` must be
        None). The version used is recorded; coverage is ``test-set``.
    device, batch_size, workers, compile
        Inference settings: device, tiles per batch, post-processing processes,
        ``torch.compile``. Not part of the run's id: results do not depend on them beyond
        floating-point rounding.
    executor, address
        Where samples are predicted and scored (:mod:`cellbench.runs.executor`): ``local``
        (this process) or ``dask`` (a local cluster of ``workers`` processes, or the cluster
        at ``address``). Not part of the run's id: the rows are the same.
    """

    dataset: str
    split: str | None = None
    model: str | None = None
    predictions: str | None = None
    preset: str | None = None
    iou: float | str = 0.5
    radius_um: float | None = None
    samples: list[str] | None = None
    limit: int | None = None
    test_set: str | None = None
    task: str | None = None
    device: str = "cpu"
    batch_size: int = 8
    workers: int = 1
    compile: bool = False
    executor: str = "local"
    address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Progress:
    """Progress of a run: ``done`` of ``total`` samples (stored ones included)."""

    run_id: str
    done: int
    total: int
    sample_id: str | None = None
    eta_s: float | None = None
    status: str = "running"
    #: measured throughput of this session, samples per second (None before the first)
    rate: float | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``cellbench <version>`` plus the git commit of the checkout when there is one.

    Computed once per process (two git calls): run records are flushed every few seconds."""
    v = f"cellbench {cellbench.__version__}"

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(config.REPO_DIR), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return v
    return f"{v} ({sha}{'+dirty' if dirty else ''})"


def _float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    f = float(v)
    return None if math.isnan(f) else f


#: Result keys that echo parameters, not metrics (kept in the runs table instead).
PARAMETER_KEYS = frozenset(
    {"iou_threshold", "radius_px", "preset", "averaging", "dice_threshold", "isbi_averaging"}
)


def flatten(
    result: Mapping[str, Any], class_names: Mapping[str, str]
) -> list[tuple[str, str, float | None]]:
    """``(class, metric, value)`` triples of one metrics-engine result (per image or dataset)."""
    out: list[tuple[str, str, float | None]] = []
    for k, v in result.items():
        if k in PARAMETER_KEYS:
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool) or v is None:
            out.append(("all", k, _float(v)))
    for cid, vals in (result.get("per_class") or {}).items():
        name = class_names.get(str(cid), str(cid))
        out += [
            (name, k, _float(v)) for k, v in vals.items() if not isinstance(v, (dict, list, str))
        ]
    if isinstance(result.get("all"), Mapping):  # points: class-agnostic block
        out += [("all", k, _float(v)) for k, v in result["all"].items() if not isinstance(v, str)]
    for t, vals in (result.get("by_threshold") or {}).items():
        out += [("all", f"{k}@{t}", _float(v)) for k, v in vals.items()]
    types = result.get("types")
    if types:
        out.append(("all", "f_d", _float(types.get("f_d"))))
        out.append(("all", "type_acc", _float(types.get("acc"))))
        for cid, v in (types.get("f_t") or {}).items():
            out.append((class_names.get(str(cid), str(cid)), "f_t", _float(v)))
        for cid, v in (types.get("f_cat") or {}).items():
            out.append((class_names.get(str(cid), str(cid)), "f_cat", _float(v)))
    return out


class _Source:
    """Where predictions of a run come from (a model, a folder, a stored set)."""

    def __init__(self, spec: EvalSpec, catalog: Catalog, reader):
        self.spec = spec
        self.dataset = catalog.get(spec.dataset)
        self.reader = reader
        self.card = None
        self.predictor = None
        self.folder = None  # PredictionFiles of a folder
        self.set_name: str | None = None
        self.class_map: dict[int, int | None] | None = None
        self.semantic = False  # set by the evaluation: stored maps are then class masks
        if spec.model is not None:
            from cellbench.models.registry import get_model

            self.card = get_model(spec.model)
            if self.card.classes and self.dataset.classes:
                from cellbench.data.classes import label_map

                try:
                    self.class_map = label_map(self.card, self.dataset)
                except ValueError:
                    self.class_map = None  # model coarser than the dataset: class-agnostic
        elif spec.predictions is None:
            raise CellbenchError("give a model or stored predictions to evaluate")
        elif Path(spec.predictions).is_dir():
            self.folder = prediction_files(spec.predictions)
            self.hashes: dict[str, str] = {}
            self.stats: dict[str, tuple] = {}
        elif spec.predictions in reader.prediction_sets():
            self.set_name = spec.predictions
        else:
            sets = ", ".join(reader.prediction_sets()) or "none"
            raise DataError(
                Path(spec.predictions),
                f"neither a folder of instance maps nor a prediction set of '{spec.dataset}' "
                f"(stored sets: {sets})",
            )

    def identity(self, records) -> dict[str, Any]:
        """What the run's id is computed from: the model and its weights' sha256, or the
        stored predictions *by content* (sha256 of each file the run reads), so that changed
        predictions make a new run and a resume never mixes old and new files."""
        if self.card is not None:
            return {"model": self.card.id, "sha256": self.card.weights.sha256}
        if self.folder is not None:
            self.stats = {
                r.sample_id: prediction_stat(self.folder[r.sample_id])
                for r in records
                if r.sample_id in self.folder
            }
            self.hashes = {
                r.sample_id: prediction_hash(self.folder[r.sample_id])
                for r in records
                if r.sample_id in self.folder
            }
            hashing.save()  # remembered for the next command on these files
            content = hashlib.sha256(
                "\n".join(f"{k}:{v}" for k, v in sorted(self.hashes.items())).encode()
            ).hexdigest()
            return {"predictions": str(Path(self.spec.predictions).resolve()), "content": content}
        files = self.reader.prediction_files(self.set_name)
        content = [sha256_file(f) for f in files]
        hashing.save()
        return {"predictions": f"{self.spec.dataset}:{self.set_name}", "content": content}

    @property
    def model_id(self) -> str:
        if self.card is not None:
            return self.card.id
        if self.set_name is not None:
            return f"predictions:{self.set_name}"
        return f"predictions:{Path(self.spec.predictions).name}"

    @property
    def train_datasets(self) -> str:
        return self.card.training_set if self.card is not None else ""

    def load(self):
        if self.card is not None and self.predictor is None:
            from cellbench.models.registry import load_predictor
            from cellbench.runs.executor import worker_device

            self.predictor = load_predictor(
                self.card,
                device=worker_device(self.spec.device),
                batch_size=self.spec.batch_size,
                compile=self.spec.compile,
            )

    def _classes(self, inst) -> dict[int, int] | None:
        """The model's instance classes in the test dataset's class ids (None: agnostic).

        A nucleus of a class the dataset does not label (a 6-class model's ``connective`` on
        MoNuSAC, whose four classes leave stroma unannotated) gets class 0, none of the
        dataset's: it still counts in the class-agnostic figures, belongs to no class in the
        per-class ones, and paired with an annotated nucleus it is a misclassification."""
        if inst.classes is None or self.class_map is None:
            return None
        return {i: self.class_map.get(c) or 0 for i, c in inst.classes.items()}

    def predictions(self, records, load):
        """Yield ``(record, sample, prediction)`` in order; ``load(record)`` gives the sample.

        A prediction is ``(labels, classes, scores)`` for instances or :class:`Points`. With a
        model and ``workers`` > 1, post-processing of earlier samples overlaps inference.
        """
        if self.predictor is None:
            for rec in records:
                sample = load(rec)
                yield rec, sample, self._stored(rec, sample)
            return
        queue: list = []

        def images():
            for rec in records:
                sample = load(rec)
                queue.append((rec, sample))
                yield sample.image

        def mpps():
            while True:
                yield queue[-1][1].meta.get("mpp")

        stream = self.predictor.predict_many(images(), mpps(), workers=self.spec.workers)
        while True:
            try:
                inst = next(stream)
            except StopIteration:
                return
            except DataError as e:  # a model's unusable output: name the sample too
                sid = queue[0][0].sample_id if queue else "?"
                raise DataError(e.path, f"{e.problem} (sample '{sid}')") from None
            rec, sample = queue.pop(0)
            yield rec, sample, (inst.labels, self._classes(inst), inst.scores)

    def _stored(self, record, sample):
        if self.folder is not None:
            path = self.folder.get(record.sample_id)
            if path is None:
                raise DataError(
                    Path(self.spec.predictions),
                    f"no prediction for sample '{record.sample_id}'"
                    + self.folder.explain(record.sample_id),
                )
            sid = record.sample_id
            unchanged = prediction_stat(path) == self.stats.get(sid)  # else: hash again
            if not unchanged and prediction_hash(path) != self.hashes.get(sid):
                raise DataError(path, "changed since the run started; evaluate again for a new run")
            truth = sample.truth
            shape = None if truth is None else tuple(truth.shape[:2])
            if self.semantic and path.suffix.lower() in INSTANCE_SUFFIXES:
                return _class_mask_file(path, shape)
            if shape is None and sample.image is not None:
                shape = sample.image.shape[:2]
            elif shape is None and sample.meta.get("height") and sample.meta.get("width"):
                shape = (int(sample.meta["height"]), int(sample.meta["width"]))
            inst, classes, scores = read_prediction(
                path, shape, lambda name: self.reader.class_id(name, path)
            )
            if classes is not None:
                declared = {c.id for c in self.dataset.classes}
                unknown = sorted(set(classes.values()) - declared - {0})  # 0: no class
                if unknown:
                    raise DataError(
                        path,
                        f"class id(s) {unknown} are not classes of '{self.dataset.id}' "
                        f"(ids {sorted(declared)})",
                    )
            return inst, classes, scores
        return self.reader.load_predictions(record, self.set_name)


#: Samples a local run of stored predictions scores in its own process before forking
#: workers for the rest (:func:`cellbench.runs.executor.fork_workers`).
FORK_FIRST = 1

#: The preset kind of each task, and its default preset.
PRESET_KIND = {"instances": "instance", "points": "points", "semantic": "semantic"}
DEFAULT_PRESETS = {"instances": "hovernet", "points": "ocelot", "semantic": "apacs23"}


def class_mask(instances, classes: Mapping[int, int] | None) -> np.ndarray:
    """``(H, W) int32`` pixel classes of instances (a map or :class:`Objects`): each instance's
    class, 1 for all when ``classes`` is None; where objects overlap, the smaller one's."""
    lab = instances.to_label_map() if isinstance(instances, Objects) else np.asarray(instances)
    if classes is None:
        return (lab > 0).astype(np.int32)
    lut = np.zeros(int(lab.max(initial=0)) + 1, np.int32)
    for i, c in classes.items():
        if 0 < int(i) < len(lut):
            lut[int(i)] = int(c or 0)
    return lut[lab]


def semantic_truth(sample) -> np.ndarray | None:
    """The class mask a semantic run scores against: the pixel classes of the instance ground
    truth (map or objects; single-class datasets: the foreground), else the tissue mask."""
    if sample.truth is not None:
        return class_mask(sample.truth, sample.classes)
    if sample.tissue_mask is not None:
        return np.asarray(sample.tissue_mask).astype(np.int32)
    return None


def _iou_key(iou: float | str) -> float | str:
    """The IoU as it identifies a run: ``"0.5"`` (from the CLI) and ``0.5`` are the same."""
    if isinstance(iou, str) and ":" not in iou:
        try:
            return float(iou)
        except ValueError:
            return iou
    return iou


def semantic_pair(sample, pred) -> tuple[np.ndarray | None, np.ndarray, bool]:
    """``(truth, predicted class mask, class-agnostic)`` of a semantic run's sample: a stored
    class mask as it is, a model's instances as pixel classes; a class-agnostic prediction is
    compared with the ground truth's foreground."""
    mask = pred if isinstance(pred, np.ndarray) else class_mask(*pred[:2])
    truth = semantic_truth(sample)
    agnostic = not isinstance(pred, np.ndarray) and pred[1] is None
    if agnostic and truth is not None:
        truth = (truth > 0).astype(np.int32)
    return truth, mask, agnostic


def _class_mask_file(path: Path, shape) -> np.ndarray:
    """A stored class mask (semantic runs): integers, 0 = background, the image's size."""
    from cellbench.data.imageio import read_label_array

    arr = read_label_array(path)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype.kind not in "iub":
        raise DataError(
            path, f"class mask must be a 2-D integer image, got {arr.dtype} {arr.shape}"
        )
    if shape is not None and arr.shape != tuple(shape):
        raise DataError(path, f"shape {arr.shape} differs from the ground truth {tuple(shape)}")
    return arr.astype(np.int32)


def within_region(pred, region: np.ndarray):
    """``pred`` without the objects whose centroid lies outside ``region`` (bool mask): on a
    partly annotated image they cannot be judged, so they are neither TP nor FP."""
    region = np.asarray(region, bool)
    if isinstance(pred, tuple) and isinstance(pred[0], Objects):
        obj, classes, scores = pred
        xy = np.rint(obj.centroids()).astype(int).reshape(-1, 2)
        keep = obj.ids[region[xy[:, 1], xy[:, 0]]] if len(obj) else obj.ids
        kept = set(keep.tolist())
        return (
            obj.select(keep),
            None if classes is None else {k: v for k, v in classes.items() if k in kept},
            None if scores is None else {k: v for k, v in scores.items() if k in kept},
        )
    if isinstance(pred, Points):
        xy = np.rint(pred.xy).astype(int)
        h, w = region.shape
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        inside[inside] = region[xy[inside, 1], xy[inside, 0]]
        return Points(pred.xy[inside], pred.cls[inside], pred.score[inside])
    labels, classes, scores = pred
    lab = np.asarray(labels)
    n = int(lab.max()) + 1 if lab.size else 1
    rr, cc = np.nonzero(lab)
    ids = lab[rr, cc]
    cnt = np.bincount(ids, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.rint(np.bincount(ids, rr, n) / cnt).astype(int, copy=False)
        cx = np.rint(np.bincount(ids, cc, n) / cnt).astype(int, copy=False)
    present = np.flatnonzero(cnt[1:]) + 1
    outside = present[~region[cy[present], cx[present]]]
    if not len(outside):
        return pred
    keep = lab.copy()
    keep[np.isin(keep, outside)] = 0
    drop = set(outside.tolist())
    return (
        keep,
        None if classes is None else {k: v for k, v in classes.items() if k not in drop},
        None if scores is None else {k: v for k, v in scores.items() if k not in drop},
    )


def centroid_points(labels, classes, scores) -> Points:
    """Instances (a map or :class:`Objects`) as points at their centroids, with their class
    (1 when class-agnostic) and score (1.0 when none)."""
    from scipy import ndimage as ndi

    if isinstance(labels, Objects):
        cls = [classes.get(int(i), 0) if classes else 1 for i in labels.ids]
        sc = [scores.get(int(i), 1.0) if scores else 1.0 for i in labels.ids]
        return Points(labels.centroids(), cls, sc) if len(labels) else Points.empty()
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return Points.empty()
    cy_cx = np.asarray(ndi.center_of_mass(np.ones_like(labels), labels, ids)).reshape(-1, 2)
    cls = [classes.get(int(i), 0) if classes else 1 for i in ids]
    sc = [scores.get(int(i), 1.0) if scores else 1.0 for i in ids]
    return Points(cy_cx[:, ::-1], cls, sc)


class Evaluation:
    """One run: plan it (``run_id``, samples) and execute it into a store."""

    def __init__(self, spec: EvalSpec, catalog: Catalog | None = None, store: Store | None = None):
        self.spec = spec
        self.catalog = catalog or load_catalog()
        self.store = store or Store()
        self.dataset = self.catalog.get(spec.dataset)
        if not self.catalog.is_available(self.dataset):
            raise DataError(
                self.catalog.path,
                f"dataset '{spec.dataset}' has no local data: {self.dataset.obtain}",
            )
        self.reader = get_reader(self.catalog, spec.dataset)
        recs = [r for r in records_of(self.reader) if spec.split is None or r.split == spec.split]
        self.test_set = None
        if spec.test_set is not None:
            recs = self._test_set_records(recs)
        self.n_split = len(recs)
        if spec.samples:
            wanted = set(spec.samples)
            missing = wanted - {r.sample_id for r in recs}
            if missing:
                raise KeyError(
                    f"no sample(s) {sorted(missing)} in '{spec.dataset}' split {spec.split}"
                )
            recs = [r for r in recs if r.sample_id in wanted]
        if spec.limit is not None:
            recs = recs[: spec.limit]
        if not recs:
            raise KeyError(f"dataset '{spec.dataset}' has no samples in split '{spec.split}'")
        self.records = recs
        self.task = self._task()
        self.preset = spec.preset or DEFAULT_PRESETS[self.task]
        get_preset(self.preset, PRESET_KIND[self.task])
        self.iou = parse_thresholds(spec.iou) if self.task == "instances" else None
        self.source = _Source(spec, self.catalog, self.reader)
        self.source.semantic = self.task == "semantic"
        self.class_names = {str(c.id): c.name for c in self.dataset.classes}
        from cellbench.models.calibration import calibration_warnings

        #: resolution / modality / stain risks of this model on these samples (one line each)
        self.warnings = calibration_warnings(
            self.source.card, self.dataset, self.catalog, self.records
        )
        self.run_id = self._run_id()

    def _task(self) -> str:
        spec = self.spec
        if spec.task is not None:
            if spec.task not in PRESET_KIND:
                raise CellbenchError(
                    f"unknown task {spec.task!r}; choose one of {', '.join(PRESET_KIND)}"
                )
            return spec.task
        if spec.preset is not None and get_preset(spec.preset).kind == "semantic":
            return "semantic"
        return "instances" if "instance_segmentation" in self.dataset.tasks else "points"

    @classmethod
    def of_run(cls, run: Mapping[str, Any], catalog=None, store=None) -> Evaluation:
        """The evaluation of a stored run, from its recorded parameters and under its id (so
        its kept predictions are found); refused when the model's weights changed since."""
        params = run.get("parameters") or {}
        if isinstance(params, str):
            params = json.loads(params)
        fields = {f.name for f in dataclasses.fields(EvalSpec)}
        ev = cls(EvalSpec(**{k: v for k, v in params.items() if k in fields}), catalog, store)
        ev.run_id = run["run_id"]
        card = ev.source.card
        sha = run.get("model_sha256")
        if card is not None and sha and card.weights.sha256 != sha:
            raise CellbenchError(
                f"run '{run['run_id']}': the weights of model '{card.id}' changed since the run "
                "(sha256 differs); its predictions cannot be replayed"
            )
        return ev

    def _test_set_records(self, recs):
        """The records of the test set's members of this dataset (all of them, or an error)."""
        from cellbench.data.testsets import resolve

        spec = self.spec
        if spec.split is not None:
            raise CellbenchError("give either a split or a test set, not both")
        ts = resolve(spec.test_set, self.catalog)
        ids = ts.sample_ids(spec.dataset)
        if not ids:
            raise CellbenchError(
                f"dataset '{spec.dataset}' has no member in test set {ts.ref} "
                f"(its datasets: {', '.join(ts.datasets)})"
            )
        have = {r.sample_id: r for r in recs}
        gone = [i for i in ids if i not in have]
        if gone:
            raise DataError(
                ts.path or Path(ts.ref),
                f"{len(gone)} member(s) of '{spec.dataset}' are not in the local data "
                f"(e.g. '{gone[0]}'); rebuild the test set for a new version",
            )
        self.test_set = ts
        return [have[i] for i in ids]

    def _todo(self) -> list:
        done = self.store.done_samples(self.run_id)
        return [r for r in self.records if r.sample_id not in done]

    def _run_id(self) -> str:
        ident = {
            **self.source.identity(self.records),
            "dataset": self.spec.dataset,
            "split": self.spec.split,
            "samples": sorted(r.sample_id for r in self.records),
            "preset": self.preset,
            "iou": _iou_key(self.spec.iou) if self.task == "instances" else None,
            "radius_um": self.spec.radius_um,
            "version": cellbench.__version__,
        }
        if self.test_set is not None:
            ident["test_set"] = self.test_set.ref
        regions = self.reader.region_rules(self.records)
        if regions:  # scored within annotated regions: a different run from one without
            ident["annotated_regions"] = regions
        h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
        part = self.test_set.name if self.test_set is not None else self.spec.split or "all"
        name = f"{self.source.model_id}_{self.spec.dataset}_{part}_{self.preset}"
        # a safe id whatever the model, dataset or predictions folder is called ("..": none)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
        name = re.sub(r"\.{2,}", ".", name).strip("-.")[:160]
        return f"{name}_{h}"

    def replay(self, records=None):
        """Yield ``(record, sample, prediction)`` of the run again, in order.

        Stored predictions are read back; a model's predictions come from the kept copy of the
        evaluation (:mod:`cellbench.runs.predcache`) or are recomputed (and then kept).
        """
        records = self.records if records is None else records
        if self.source.card is None:
            yield from self.source.predictions(records, self.reader.load)
            return
        kept = {r.sample_id: predcache.load(self.run_id, r.sample_id) for r in records}
        missing = [r for r in records if kept[r.sample_id] is None]
        fresh = iter(())
        if missing:
            self.source.load()
            fresh = self.source.predictions(missing, self.reader.load)
        for rec in records:
            pred = kept[rec.sample_id]
            if pred is None:
                rec, sample, pred = next(fresh)
                predcache.save(self.run_id, rec.sample_id, pred)
            else:
                sample = self.reader.load(rec)
            yield rec, sample, pred

    # -- scoring ----------------------------------------------------------------------------

    def score(self, record, sample, pred) -> dict[str, Any]:
        """The metrics engine's result for one sample and its prediction (predictions outside
        a partly annotated sample's annotated region are left out: :func:`within_region`)."""
        if self.task == "semantic":
            return self._score_semantic(record, sample, pred)
        if sample.annotated_region is not None:
            pred = within_region(pred, sample.annotated_region)
        if self.task == "instances":
            if sample.truth is None:
                raise DataError(Path(record.sample_id), "sample has no instance ground truth")
            labels, classes, _ = pred
            kw: dict[str, Any] = {}
            if len(self.dataset.classes) > 1 and sample.classes is not None:
                if classes is not None:
                    kw = {"true_classes": sample.classes, "pred_classes": classes}
                else:  # a class-agnostic model on a classed dataset: detection F_d still,
                    # and per ground-truth category (seed 000's F_I..F_IV)
                    kw = {"centroid_f1": True, "true_categories": sample.classes}
            return instance_scores(
                sample.truth, labels, preset=self.preset, iou=self.spec.iou, **kw
            )
        gt = sample.points if sample.points is not None else Points.empty()
        pts = pred if isinstance(pred, Points) else centroid_points(*pred)
        if isinstance(pred, tuple) and pred[1] is None:  # class-agnostic model
            gt = Points(gt.xy, np.ones(len(gt)), gt.score)
            pts = Points(pts.xy, np.ones(len(pts)), pts.score)
        kw = {}
        if self.spec.radius_um is not None:
            kw = {"radius_um": self.spec.radius_um, "mpp": sample.meta.get("mpp")}
        return point_scores(gt, pts, preset=self.preset, **kw)

    def _score_semantic(self, record, sample, pred) -> dict[str, Any]:
        """Pixel scores of a class mask (stored) or of a model's instances as a class mask;
        a class-agnostic prediction is compared with the ground truth's foreground."""
        if isinstance(pred, Points):
            raise DataError(Path(record.sample_id), "points cannot be scored as a class mask")
        truth, mask, agnostic = semantic_pair(sample, pred)
        if truth is None:
            raise DataError(
                Path(record.sample_id), "sample has no instances, objects or tissue mask to score"
            )
        declared = [1] if agnostic else [c.id for c in self.dataset.classes] or None
        return semantic_scores(
            truth, mask, declared, valid=sample.annotated_region, pred_name=record.sample_id
        )

    def _rows(self, sample_id: str | None, meta: Mapping[str, Any], result, level: str):
        base = {
            "run_id": self.run_id,
            "model_id": self.source.model_id,
            "train_datasets": self.source.train_datasets,
            "test_dataset": self.spec.dataset,
            "split": self.spec.split,
            "level": level,
            "sample_id": sample_id,
            **{k: (None if meta.get(k) is None else str(meta.get(k))) for k in GROUP_KEYS},
        }
        return [
            {**base, "class": c, "metric": m, "value": v}
            for c, m, v in flatten(result, self.class_names)
        ]

    def aggregate(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """The preset's dataset-level figures from per-sample results."""
        declared = [c.id for c in self.dataset.classes] if len(self.dataset.classes) > 1 else None
        return aggregate_task(self.task, results, self.preset, declared)

    # -- running ----------------------------------------------------------------------------

    def score_records(self, records):
        """Yield ``(sample id, result, rows)`` for ``records`` in order: predictions (model or
        stored) scored, a model's predictions kept (:mod:`cellbench.runs.predcache`). Stored
        predictions are scored without decoding the images (only a model needs them)."""
        if self.source.card is None:
            load = functools.partial(self.reader.load, pixels=False)
        else:
            load = self.reader.load
        for rec, sample, pred in self.source.predictions(records, load):
            if self.source.card is not None:
                predcache.save(self.run_id, rec.sample_id, pred)
            res = self.score(rec, sample, pred)
            yield rec.sample_id, res, self._rows(rec.sample_id, rec.meta, res, "sample")

    def _scored(self, todo, executor=None):
        """:meth:`score_records` in this process, or spread over the executor's workers in
        chunks (each worker rebuilds this evaluation from its spec and checks the run id).
        ``executor``: one already started (shared by the runs of a grid; left open)."""
        if executor is None and self.spec.executor == "local" and not self.spec.address:
            from cellbench.runs.executor import fork_workers, forked_map

            workers = fork_workers(len(todo)) if self.source.card is None else 0
            if not workers:
                yield from self.score_records(todo)
                return
            # stored predictions on several cores: the first samples here (their lazy
            # imports done before forking), the rest in forked workers, in order
            yield from self.score_records(todo[:FORK_FIRST])
            rest = todo[FORK_FIRST:]
            size = max(4, min(32, len(rest) // (8 * workers)))
            parts = [rest[i : i + size] for i in range(0, len(rest), size)]
            for part in forked_map(lambda recs: list(self.score_records(recs)), parts, workers):
                yield from part
            return
        from cellbench.runs.executor import get_executor

        ex = executor or get_executor(
            self.spec.executor, self.spec.address, max(2, self.spec.workers)
        )
        size = max(1, min(16, len(todo) // (2 * ex.window) or 1))
        chunks = [
            _Chunk(
                self.spec.to_json(),
                str(self.catalog.path),
                str(self.catalog.root),
                str(config.home()),
                self.run_id,
                [r.sample_id for r in todo[i : i + size]],
            )
            for i in range(0, len(todo), size)
        ]
        try:
            for part in ex.map(_score_chunk, chunks):
                yield from part
        finally:
            if executor is None:
                ex.close()

    def info(self, status: str, **extra: Any) -> dict[str, Any]:
        card = self.source.card
        return {
            "run_id": self.run_id,
            "status": status,
            "model_id": self.source.model_id,
            "model_kind": card.kind if card else "predictions",
            "model_sha256": card.weights.sha256 if card else None,
            "model_card": str(card.path) if card else None,
            "train_datasets": self.source.train_datasets,
            "test_dataset": self.spec.dataset,
            "split": self.spec.split,
            "task": self.task,
            "preset": self.preset,
            "iou": self.spec.iou if self.task == "instances" else None,
            "predictions": self.spec.predictions,
            "parameters": self.spec.to_json(),
            "n_samples": len(self.records),
            "n_split": self.n_split,
            "coverage": coverage_of(self.spec.to_json(), len(self.records), self.n_split),
            "test_set": self.test_set.ref if self.test_set is not None else None,
            "sample_set": sample_set_id(r.sample_id for r in self.records),
            "family": card.family if card else None,
            "warnings": self.warnings,
            "catalog": str(self.catalog.path),
            "catalog_version": self.catalog.version,
            "code_version": code_version(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            **extra,
        }

    def run(
        self,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        flush_every: int = 16,
        flush_seconds: float = 10.0,
        executor=None,
        flush_min_seconds: float = 0.0,
    ) -> dict[str, Any]:
        """Evaluate the samples not yet stored; return the run's final record.

        Rows are committed in parts of at most ``flush_every`` samples (or every
        ``flush_seconds``), but not more often than every ``flush_min_seconds`` (a run of
        fast samples then writes a few parts, not one per ``flush_every``); a stop request
        (``should_stop``) or an error commits the finished samples and records
        ``cancelled`` / ``failed``. ``executor``: a started executor
        (:func:`cellbench.runs.executor.get_executor`) to spread the samples over, shared by
        several runs (a model x dataset grid); default: the spec's own.
        """
        store = self.store
        prev = store.get_run(self.run_id) if self.run_id in store.run_ids() else {}
        if prev.get("status") == "complete" and not self._todo():
            return prev  # nothing to write: works on a read-only or full store too
        with store.lock(self.run_id):
            store.clean_temporary(self.run_id)
            store.compact(self.run_id)  # a resume reads one part, not thousands
            prev = store.get_run(self.run_id) if self.run_id in store.run_ids() else {}
            todo = self._todo()
            n_total = len(self.records)
            if prev.get("status") == "complete" and not todo:
                return prev
            created = prev.get("created", _now())
            started = _now()
            store.write_run(
                self.info(
                    "running",
                    created=created,
                    started=started,
                    n_done=n_total - len(todo),
                    pid=os.getpid(),
                )
            )
            local = executor is None and self.spec.executor == "local" and not self.spec.address
            if todo and local:
                self.source.load()  # (with another executor the workers load the model)
            # (sample id, result, rows) appended in one operation: an interrupt never
            # leaves half a sample in the buffer
            buf: list[tuple[str, dict, list[dict]]] = []
            last = time.monotonic()
            t0 = time.monotonic()
            n_done = n_total - len(todo)

            def flush() -> None:
                nonlocal last
                if buf:
                    rows = [r for _, _, rs in buf for r in rs]
                    store.append(self.run_id, frame(rows), {sid: res for sid, res, _ in buf})
                buf.clear()
                last = time.monotonic()

            status, error = "complete", None
            try:
                stream = self._scored(todo, executor)
                for k, (sid, res, rows) in enumerate(stream):
                    if progress:
                        rate = k / (time.monotonic() - t0) if k else None
                        eta = (len(todo) - k) / rate if rate else None
                        progress(Progress(self.run_id, n_done, n_total, sid, eta, rate=rate))
                    buf.append((sid, res, rows))
                    n_done += 1
                    if should_stop is not None and should_stop():
                        status = "cancelled"
                        stream.close()
                        break
                    since = time.monotonic() - last
                    if (len(buf) >= flush_every and since >= flush_min_seconds) or (
                        since > flush_seconds
                    ):
                        flush()
                        store.write_run(
                            self.info(
                                "running",
                                created=created,
                                started=started,
                                n_done=n_done,
                                pid=os.getpid(),
                            )
                        )
                flush()
            except BaseException as e:
                status = "cancelled" if isinstance(e, KeyboardInterrupt) else "failed"
                error = f"{type(e).__name__}: {e}"
                # keep what is finished; when the store itself fails these fail too, quietly:
                # the error below is the one the user sees
                with contextlib.suppress(StoreWriteError):
                    flush()
                    store.write_run(
                        self.info(
                            status,
                            created=created,
                            started=started,
                            finished=_now(),
                            n_done=n_done,
                            error=error,
                        )
                    )
                raise
            if status == "complete":
                store.compact(self.run_id)
                agg = self.aggregate(store.results(self.run_id))
                store.set_dataset_rows(self.run_id, frame(self._rows(None, {}, agg, "dataset")))
            final = self.info(
                status,
                created=created,
                started=started,
                finished=_now(),
                n_done=n_done,
                error=error,
            )
            store.write_run(final)
            if progress:
                progress(Progress(self.run_id, n_done, n_total, None, 0.0, status))
            return final


@dataclass
class _Chunk:
    """Work for one executor task: the evaluation to rebuild and its samples."""

    spec: dict[str, Any]
    catalog: str
    data_root: str
    home: str
    run_id: str
    sample_ids: list[str]


_WORKER_EVALUATIONS: dict[str, Evaluation] = {}


def _score_chunk(chunk: _Chunk) -> list[tuple[str, dict, list[dict]]]:
    """Executor task: score some samples of a run (in a worker process)."""
    os.environ["CELLBENCH_HOME"] = chunk.home
    os.environ["CELLBENCH_DATA"] = chunk.data_root
    ev = _WORKER_EVALUATIONS.get(chunk.run_id)
    if ev is None:
        # in the worker: in-process, one post-processing process (the worker is itself one
        # of the parallel processes, and a daemonic one may not start others)
        spec = dict(chunk.spec, executor="local", address=None, workers=1)
        fields = {f.name for f in dataclasses.fields(EvalSpec)}
        ev = Evaluation(
            EvalSpec(**{k: v for k, v in spec.items() if k in fields}),
            load_catalog(Path(chunk.catalog), root=Path(chunk.data_root)),
            Store(),
        )
        if ev.run_id != chunk.run_id:
            raise CellbenchError(
                f"a worker sees run '{ev.run_id}', not '{chunk.run_id}': workers need the same "
                "data, predictions, models and catalog as the evaluating process"
            )
        ev.source.load()
        _WORKER_EVALUATIONS.clear()
        _WORKER_EVALUATIONS[chunk.run_id] = ev
    by_id = {r.sample_id: r for r in ev.records}
    return list(ev.score_records([by_id[s] for s in chunk.sample_ids]))


def evaluate(spec: EvalSpec, catalog: Catalog | None = None, store: Store | None = None, **kw):
    """Plan and run an evaluation (see :meth:`Evaluation.run`); returns the run's record."""
    return Evaluation(spec, catalog, store).run(**kw)
