"""Training the built-in architecture on one or several catalog datasets.

A run is described by a YAML config (:class:`TrainConfig`, committed next to the checkpoint it
produced) and writes, in its output folder:

``weights.pt`` and ``card.yaml``
    The checkpoint (best validation loss) and its model card, written by
    :func:`cellbench.models.registry.save_checkpoint`: training datasets, splits, the samples
    held out for validation, epochs, validation metrics, hardware and wall time.
``config.yaml``
    The config as run (defaults written out), so ``cellbench train --config`` reproduces it.
``train_log.jsonl``
    One JSON line per epoch: losses per branch (train and validation), learning rate, seconds.

Data
----
Every training sample is read through the catalog's reader, resized from its own mpp to the
config's ``mpp`` (image: bilinear with anti-aliasing; instances: nearest neighbour), and kept
in memory. Each step draws a dataset (by ``weight``), an image (by area) and a random
``patch`` x ``patch`` crop (padded with white when the image is smaller), then applies
augmentation: random 90-degree rotations and flips, stain jitter in HED optical-density space
(Ruifrok-Johnston matrix, per-channel scale and shift), brightness and contrast. Targets are
computed after the geometric augmentation: foreground, HoVer-Net h/v maps
(:func:`cellbench.models.postprocess.hv_targets`) and the per-pixel dataset class.

Losses
------
Foreground: BCE + soft Dice; h/v: MSE + MSGE; types: the label-set-aware cross-entropy and
focal Tversky of seed 002 (:mod:`cellbench.models.losses`) on nucleus pixels, each dataset's labels
mapped onto the network's classes through the class hierarchy. A dataset labelled at the root
("nucleus") gives a constant type loss: it trains the foreground and h/v branches only, and the
type head keeps what finer-labelled data taught it. ``init`` starts from another checkpoint
with the same layers (pretrain, then fine-tune on a dataset labelled at another level, as in
seed 002), nothing added or removed.

Validation and early stopping
-----------------------------
Validation samples are held out from the training data by whole groups (patients, else
slides: :func:`cellbench.data.splits.group_holdout`), or are the validation centers of a
center-held-out split, or a named split. Each epoch the validation losses are computed on fixed
tiles of those images; training stops after ``patience`` epochs without improvement of the
monitored value and the best weights are kept. ``optim.monitor: segmentation`` (default)
watches the weighted foreground and h/v losses, which decide instance quality (PQ): on
CoNSeP the validation type cross-entropy of held-out slides rises long before segmentation
stops improving, and the total loss would stop training too early; ``loss`` watches the
total; ``last`` never stops early and keeps the last epoch's weights (validation is still
logged), for validation sets too small or too unlike the training images to choose by (the
local MoNuSAC subset: one slide of tiny tiles, whose loss rises while training improves).
Finally the validation images are segmented with the card's post-processing and
scored (HoVer-Net preset: PQ, AJI, Dice) into the card.

Determinism: on CPU with the same config, threads and torch version, runs repeat exactly.
Imports torch, numpy and the readers only (no polars, streamlit), so it runs on GPU machines
that have just those.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cellbench.core.errors import CellbenchError, DataError
from cellbench.models.card import CardClass, PostProcess
from cellbench.models.stain import StainSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CenterSpec(_Strict):
    """Use one part of a center-held-out split (:func:`cellbench.data.splits.center_held_out`)."""

    seed: int = 0
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)


class DataSpec(_Strict):
    """One training dataset.

    ``split`` (None: every sample) and optionally ``samples`` select the training pool;
    ``centers`` trains on the train centers and validates on the validation centers of a
    center-held-out split of that pool (its test centers are never read).
    """

    dataset: str
    split: str | None = "train"
    samples: list[str] | None = None
    centers: CenterSpec | None = None
    weight: float = Field(default=1.0, gt=0)


class Validation(_Strict):
    """How validation samples are chosen for datasets without ``centers``.

    ``group``: hold out ``fraction`` of the pool's patients/slides; ``split``: use the
    dataset's split named ``split`` (e.g. a published validation split).
    """

    mode: Literal["group", "split"] = "group"
    fraction: float = Field(default=0.15, gt=0, lt=1)
    split: str | None = None
    seed: int = 0


class Optim(_Strict):
    epochs: int = Field(default=40, ge=1)
    steps_per_epoch: int = Field(default=50, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    patience: int = Field(default=8, ge=1)
    monitor: Literal["segmentation", "loss", "last"] = "segmentation"


class LossWeights(_Strict):
    np_bce: float = 1.0
    np_dice: float = 1.0
    hv_mse: float = 1.0
    hv_msge: float = 1.0
    type_ce: float = 1.0
    type_ft: float = 1.0
    alpha: float = Field(default=0.7, gt=0, lt=1)
    gamma: float = Field(default=0.75, gt=0)
    #: focal Tversky form (:data:`cellbench.models.losses.FT_FORMS`); the bundled checkpoints
    #: were trained with ``literal`` and their configs say so
    ft_form: Literal["per_class", "literal"] = "per_class"


class Augment(_Strict):
    flip_rotate: bool = True
    hed: float = Field(default=0.05, ge=0)
    brightness: float = Field(default=0.1, ge=0)
    contrast: float = Field(default=0.1, ge=0)


class TrainConfig(_Strict):
    """A training run (see the module docstring). Sizes are in model pixels at ``mpp``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-.]*$")
    name: str
    description: str = ""
    license: str = "CC BY-NC-SA 4.0 (inherits the training data's licences)"
    architecture: str = "hovernet_lite"
    kwargs: dict[str, Any] = Field(default_factory=lambda: {"base": 16, "depth": 4})
    mpp: float = Field(default=0.25, gt=0)
    patch: int = Field(default=128, ge=32)
    tile: int = Field(default=256, ge=32)
    halo: int = Field(default=32, ge=0)
    classes: list[CardClass] = Field(default_factory=list)
    data: list[DataSpec] = Field(min_length=1)
    validation: Validation = Field(default_factory=Validation)
    optim: Optim = Field(default_factory=Optim)
    loss: LossWeights = Field(default_factory=LossWeights)
    augment: Augment = Field(default_factory=Augment)
    postprocess: PostProcess = Field(
        default_factory=lambda: PostProcess(method="hovernet", grid="image")
    )
    init: str | None = None
    label: str | None = None
    seed: int = 0
    threads: int | None = None
    #: stain normalisation of every image, in training and at inference
    #: (:mod:`cellbench.models.stain`): ``method`` and the ``target`` (``dataset/sample_id``)
    #: its reference is fitted to; the card records the fitted reference
    stain: StainSpec = Field(default_factory=StainSpec)

    def model_post_init(self, __context: Any) -> None:
        from cellbench.models.card import ARCHITECTURE_NAMES

        if self.stain.method == "reinhard" and not (self.stain.target or self.stain.params):
            raise ValueError("stain method 'reinhard' needs a target image (dataset/sample_id)")
        if self.stain.target and "/" not in self.stain.target:
            raise ValueError(f"stain target {self.stain.target!r}: write it as dataset/sample_id")

        if self.architecture not in ARCHITECTURE_NAMES:
            raise ValueError(
                f"unknown architecture '{self.architecture}' (known: {list(ARCHITECTURE_NAMES)})"
            )
        if self.architecture == "unet_lite":
            if self.classes:
                raise ValueError("unet_lite is trained on the foreground only: list no classes")
            if self.postprocess.method.startswith("hovernet"):
                raise ValueError(
                    f"unet_lite has no h/v maps for postprocess.method '{self.postprocess.method}'"
                    ": use distance_watershed or connected_components"
                )


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config; errors name the file and the field."""
    p = Path(path)
    from cellbench.core.safety import load_yaml, read_text

    data = load_yaml(read_text(p, "training config"), p)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        msg = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}"
            for err in e.errors()
        )
        raise DataError(p, f"invalid training config: {msg}") from None


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# -- data -------------------------------------------------------------------------------------


@dataclass
class Item:
    """One image at the training mpp: ``image (3, H, W) float32 in [0, 1]``, instances,
    per-pixel dataset class index (-1 = none), and which dataset it came from."""

    dataset: int
    sample_id: str
    image: np.ndarray
    instances: np.ndarray
    types: np.ndarray
    source: Any = None  # the original sample (validation scoring)


def _to_item(k: int, sample, dataset, mpp: float, keep_source: bool, stain=None) -> Item:
    from cellbench.models.inference import resize_chw, resize_labels, to_channels

    if sample.image is None or sample.truth is None:
        raise DataError(Path(sample.sample_id), "training needs an image and instances")
    image = stain(sample.image) if stain is not None else sample.image
    x = to_channels(image, "rgb") / np.float32(255.0)
    # overlapping objects (whole cells): the networks predict one map, so where cells overlap
    # the smaller one (seen on top) is the target (Objects.to_label_map)
    inst = np.asarray(
        sample.objects.to_label_map() if sample.objects is not None else sample.instances,
        dtype=np.int32,
    )
    src_mpp = sample.meta.get("mpp") or dataset.mpp
    f = 1.0 if src_mpp is None else float(src_mpp) / mpp
    if abs(f - 1.0) > 0.02:
        size = (max(1, round(x.shape[1] * f)), max(1, round(x.shape[2] * f)))
        x = resize_chw(x, size)
        inst = resize_labels(inst, size)
    index = {c.id: i for i, c in enumerate(dataset.classes)}
    types = np.full(inst.shape, -1, dtype=np.int8)
    if sample.classes:
        lut = np.full(int(inst.max()) + 1, -1, dtype=np.int8)
        for iid, cid in sample.classes.items():
            if 0 < iid < len(lut) and cid in index:
                lut[iid] = index[cid]
        types = lut[inst]
    elif len(dataset.classes) == 1:
        types[inst > 0] = 0
    return Item(
        k, sample.sample_id, np.ascontiguousarray(x), inst, types, sample if keep_source else None
    )


def select_samples(catalog, reader, spec: DataSpec, validation: Validation):
    """``(train records, validation records, split description)`` of one dataset."""
    from cellbench.data.record_cache import records_of
    from cellbench.data.splits import center_held_out, group_holdout

    recs = records_of(reader)
    pool = [r for r in recs if spec.split is None or r.split == spec.split]
    if spec.samples is not None:
        wanted = set(spec.samples)
        pool = [r for r in pool if r.sample_id in wanted]
        missing = wanted - {r.sample_id for r in pool}
        if missing:
            raise DataError(
                catalog.path, f"dataset '{spec.dataset}' has no samples {sorted(missing)}"
            )
    if not pool:
        raise DataError(catalog.path, f"dataset '{spec.dataset}' split '{spec.split}' is empty")
    by_id = {r.sample_id: r for r in pool}
    if spec.centers is not None:
        cs = center_held_out([r.meta for r in pool], spec.centers.fractions, spec.centers.seed)
        desc = {
            "split": spec.split or "all",
            "protocol": "center_held_out",
            "seed": spec.centers.seed,
            "fractions": list(spec.centers.fractions),
            "centers": cs.centers,
            "test_samples": cs.test,
        }
        return [by_id[s] for s in cs.train], [by_id[s] for s in cs.val], desc
    if validation.mode == "split":
        val = [r for r in recs if r.split == validation.split]
        if not val:
            raise DataError(
                catalog.path, f"dataset '{spec.dataset}' has no split '{validation.split}'"
            )
        return pool, val, {"split": spec.split or "all", "validation": validation.split}
    keep, held = group_holdout([r.meta for r in pool], validation.fraction, validation.seed)
    desc = {"split": spec.split or "all", "validation": "group holdout", "val_samples": held}
    return [by_id[s] for s in keep], [by_id[s] for s in held], desc


class Batcher:
    """Random training batches (numpy in, torch out); deterministic in its generator."""

    def __init__(self, items: list[Item], weights: list[float], cfg: TrainConfig, seed: int):
        self.items = items
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        n = len(weights)
        self.by_ds = [[i for i, it in enumerate(items) if it.dataset == k] for k in range(n)]
        w = np.array([weights[k] if self.by_ds[k] else 0.0 for k in range(n)])
        self.ds_p = w / w.sum()
        self.area_p = []
        for idx in self.by_ds:
            a = np.array([items[i].instances.size for i in idx], dtype=float)
            self.area_p.append(a / a.sum() if len(a) else a)

    @staticmethod
    def crop(it: Item, y: int, x: int, p: int):
        img, inst, typ = it.image, it.instances, it.types
        h, w = inst.shape
        if h < p or w < p:
            ph, pw = max(0, p - h), max(0, p - w)
            # white (empty brightfield background) so padding never shows unlabelled nuclei
            img = np.pad(img, ((0, 0), (0, ph), (0, pw)), constant_values=1.0)
            inst = np.pad(inst, ((0, ph), (0, pw)))
            typ = np.pad(typ, ((0, ph), (0, pw)), constant_values=-1)
        return img[:, y : y + p, x : x + p], inst[y : y + p, x : x + p], typ[y : y + p, x : x + p]

    def sample(self):
        p = self.cfg.patch
        out = []
        for _ in range(self.cfg.optim.batch_size):
            k = int(self.rng.choice(len(self.ds_p), p=self.ds_p))
            it = self.items[
                self.by_ds[k][int(self.rng.choice(len(self.by_ds[k]), p=self.area_p[k]))]
            ]
            h, w = it.instances.shape
            y = int(self.rng.integers(0, max(1, h - p + 1)))
            x = int(self.rng.integers(0, max(1, w - p + 1)))
            img, inst, typ = self.crop(it, y, x, p)
            if self.cfg.augment.flip_rotate:
                r, fl = int(self.rng.integers(4)), bool(self.rng.integers(2))
                img, inst, typ = (np.rot90(a, r, axes=(-2, -1)) for a in (img, inst, typ))
                if fl:
                    img, inst, typ = (a[..., ::-1] for a in (img, inst, typ))
            out.append((k, img, inst, typ))
        return collate(out)


def collate(rows):
    """Stack ``(dataset, image, instances, types)`` crops into torch tensors with targets."""
    import torch

    from cellbench.models.postprocess import hv_targets

    ds, imgs, fgs, hvs, typs = [], [], [], [], []
    for k, img, inst, typ in rows:
        inst = np.ascontiguousarray(inst)
        ds.append(k)
        imgs.append(np.ascontiguousarray(img))
        fgs.append(inst > 0)
        hvs.append(np.stack(hv_targets(inst)))
        typs.append(np.where(inst > 0, typ, -1))
    return (
        torch.tensor(ds),
        torch.from_numpy(np.stack(imgs)).float(),
        torch.from_numpy(np.stack(fgs)).float(),
        torch.from_numpy(np.stack(hvs)).float(),
        torch.from_numpy(np.stack(typs).astype(np.int64)),
    )


def val_tiles(items: list[Item], p: int):
    """Fixed non-overlapping ``p`` tiles covering every validation image (last ones flush)."""
    rows = []
    for it in items:
        h, w = it.instances.shape
        ys = sorted({*range(0, max(1, h - p + 1), p), max(0, h - p)})
        xs = sorted({*range(0, max(1, w - p + 1), p), max(0, w - p)})
        for y in ys:
            for x in xs:
                img, inst, typ = Batcher.crop(it, y, x, p)
                rows.append((it.dataset, img, inst, typ))
    return rows


# HED stain matrix (Ruifrok & Johnston 2001), rows = haematoxylin, eosin, DAB in OD space.
_RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32
)
_RGB_FROM_HED /= np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)


def colour_augment(x, aug: Augment, gen):
    """Stain jitter (HED optical density), brightness and contrast; ``(N, 3, H, W)`` in [0, 1]."""
    import torch

    n = x.shape[0]
    if aug.hed > 0:
        m = torch.from_numpy(_RGB_FROM_HED)
        minv = torch.linalg.inv(m)
        od = -torch.log(x.clamp(min=1 / 255)).permute(0, 2, 3, 1)  # N H W 3
        hed = od @ minv
        scale = 1 + (torch.rand(n, 1, 1, 3, generator=gen) * 2 - 1) * aug.hed
        shift = (torch.rand(n, 1, 1, 3, generator=gen) * 2 - 1) * aug.hed
        x = torch.exp(-((hed * scale + shift) @ m)).permute(0, 3, 1, 2)
    if aug.brightness > 0:
        x = x + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * aug.brightness
    if aug.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * aug.contrast) + mean
    return x.clamp(0, 1)


# -- the loop ---------------------------------------------------------------------------------


def batch_loss(model, batch, groups, cfg: TrainConfig):
    """Total loss and its parts for one batch (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    from cellbench.models import losses

    ds, x, fg, hv, typ = batch
    out = model(x)
    w = cfg.loss
    parts = {
        "np_bce": F.binary_cross_entropy_with_logits(out[:, 0], fg),
        "np_dice": losses.dice_loss(out[:, 0], fg),
    }
    from cellbench.models.nets import hv_channels

    t0 = 1 + hv_channels(cfg.architecture)  # the first type channel
    if t0 == 3:
        parts["hv_mse"], parts["hv_msge"] = losses.hv_loss(out[:, 1:3], hv, fg)
    if out.shape[1] > t0:
        ce, ft = [], []
        for k, g in enumerate(groups):
            sel = ds == k
            if not sel.any():
                continue
            frac = sel.float().mean()
            ce.append(frac * losses.hierarchical_ce(out[sel, t0:], typ[sel], g))
            ft.append(
                frac
                * losses.hierarchical_focal_tversky(
                    out[sel, t0:], typ[sel], g, w.alpha, w.gamma, form=w.ft_form
                )
            )
        parts["type_ce"] = torch.stack(ce).sum()
        parts["type_ft"] = torch.stack(ft).sum()
    total = sum(getattr(w, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _card_fields(
    cfg: TrainConfig, training: dict[str, Any], stain: StainSpec | None = None
) -> dict[str, Any]:
    from cellbench.models.nets import hv_channels

    return {
        "id": cfg.id,
        "name": cfg.name,
        "description": cfg.description,
        "license": cfg.license,
        "architecture": cfg.architecture,
        "kwargs": {**cfg.kwargs, "n_types": len(cfg.classes)},
        "input": {
            "channels": "rgb",
            "mpp": cfg.mpp,
            "normalization": "scale_unit",
            "tile": cfg.tile,
            "halo": cfg.halo,
            "multiple_of": 2 ** int(cfg.kwargs.get("depth", 4)),
            "stain": (stain or cfg.stain).model_dump(mode="json"),
        },
        "output": {
            "kind": "hovernet" if hv_channels(cfg.architecture) else "foreground",
            "activation": "sigmoid",
            "n_types": len(cfg.classes),
        },
        "classes": [c.model_dump(mode="json") for c in cfg.classes],
        "postprocess": cfg.postprocess.model_dump(mode="json"),
        "training": training,
        "provenance": "trained with `cellbench train --config config.yaml` (train_log.jsonl)",
    }


def _init_weights(model, ref: str):
    """Load another checkpoint's state_dict into ``model`` (same layers required)."""
    import torch

    from cellbench.models.backends import verify_weights
    from cellbench.models.card import load_card
    from cellbench.models.registry import get_model

    card = load_card(ref) if ref.endswith(".yaml") else get_model(ref)
    if card.kind != "cellbench":
        raise DataError(card.path, "init needs a cellbench checkpoint (state_dict)")
    verify_weights(card.weights_path, card.weights.sha256)
    state = torch.load(card.weights_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(
            card.weights_path, f"init checkpoint does not fit this architecture: {e}"
        ) from None
    return card


def validation_scores(predictor, items: list[Item]) -> dict[str, float]:
    """Mean PQ / AJI / Dice (HoVer-Net preset) of the predictor on the validation images."""
    from cellbench.metrics.instance import instance_scores

    keys = ("pq", "aji", "dice1")
    vals: dict[str, list[float]] = {k: [] for k in keys}
    for it in items:
        s = it.source
        pred = predictor.predict(s.image, s.meta.get("mpp"))
        res = instance_scores(s.truth, pred.labels, preset="hovernet")
        for k in keys:
            if res.get(k) is not None:
                vals[k].append(float(res[k]))
    return {f"val_{k}": round(float(np.mean(v)), 4) for k, v in vals.items() if v}


def train(cfg: TrainConfig, out: str | Path, catalog=None, progress=None) -> Path:
    """Run a training config; write the checkpoint folder ``out`` (see module docstring).

    ``progress(epoch, record)`` is called after each epoch. Returns the card path.
    """
    import torch

    from cellbench.data.catalog import load_catalog
    from cellbench.data.readers import get_reader
    from cellbench.models.losses import label_groups
    from cellbench.models.nets import build, n_parameters
    from cellbench.models.registry import load_predictor, save_checkpoint

    out = Path(out)
    catalog = catalog or load_catalog()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()

    stain_spec = fitted_stain(cfg.stain, catalog)
    norm = None
    if stain_spec.method != "none":
        from cellbench.models.stain import Normalizer

        norm = Normalizer(stain_spec)
    train_items: list[Item] = []
    val_items: list[Item] = []
    groups, splits = [], {}
    for k, spec in enumerate(cfg.data):
        ds = catalog.get(spec.dataset)
        if cfg.classes:
            try:
                groups.append(label_groups(cfg.classes, ds.classes))
            except ValueError as e:
                raise DataError(catalog.path, f"dataset '{ds.id}': {e}") from None
        reader = get_reader(catalog, spec.dataset)
        tr, va, desc = select_samples(catalog, reader, spec, cfg.validation)
        splits[spec.dataset] = json.dumps(desc)
        train_items += [_to_item(k, reader.load(r), ds, cfg.mpp, False, norm) for r in tr]
        # (validation losses on normalised images; validation scores run the predictor on
        # the raw samples, normalising them as at inference)
        val_items += [_to_item(k, reader.load(r), ds, cfg.mpp, True, norm) for r in va]

    model = build(cfg.architecture, **{**cfg.kwargs, "n_types": len(cfg.classes)})
    init = _init_weights(model, cfg.init) if cfg.init else None
    init_id = init.id if init else None
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=cfg.optim.epochs * cfg.optim.steps_per_epoch
    )
    batcher = Batcher(train_items, [d.weight for d in cfg.data], cfg, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    vrows = val_tiles(val_items, cfg.patch)
    vbatches = [collate(vrows[i : i + 16]) for i in range(0, len(vrows), 16)]

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"
    log = log_path.open("w", encoding="utf-8")
    best, best_state, best_epoch, stale = float("inf"), None, 0, 0
    kept_val: dict[str, float] = {}
    epoch = 0
    for epoch in range(1, cfg.optim.epochs + 1):
        te = time.time()
        model.train()
        sums: dict[str, float] = {}
        for _ in range(cfg.optim.steps_per_epoch):
            ds, x, fg, hv, typ = batcher.sample()
            x = colour_augment(x, cfg.augment, gen)
            loss, parts = batch_loss(model, (ds, x, fg, hv, typ), groups, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for key, v in {"loss": float(loss.detach()), **parts}.items():
                sums[key] = sums.get(key, 0.0) + v / cfg.optim.steps_per_epoch
        model.eval()
        vs: dict[str, float] = {}
        n_val = sum(len(b[0]) for b in vbatches)
        with torch.no_grad():
            for b in vbatches:
                loss, parts = batch_loss(model, b, groups, cfg)
                for key, v in {"loss": float(loss.detach()), **parts}.items():
                    vs[key] = vs.get(key, 0.0) + v * len(b[0]) / n_val
        rec = {
            "epoch": epoch,
            "lr": sched.get_last_lr()[0],
            "seconds": round(time.time() - te, 2),
            **{f"train_{k}": round(v, 5) for k, v in sums.items()},
            **{f"val_{k}": round(v, 5) for k, v in vs.items()},
        }
        seg = ("np_bce", "np_dice", "hv_mse", "hv_msge")
        vs["segmentation"] = sum(getattr(cfg.loss, k) * vs[k] for k in seg if k in vs)
        rec["val_segmentation"] = round(vs["segmentation"], 5)
        value = -epoch if cfg.optim.monitor == "last" else vs[cfg.optim.monitor]
        if value < best - 1e-4:
            best, best_epoch, stale = value, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            kept_val = dict(vs)
        else:
            stale += 1
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if progress:
            progress(epoch, rec)
        if stale >= cfg.optim.patience:
            break
    log.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    minutes = (time.time() - t0) / 60
    training = {
        "datasets": [d.dataset for d in cfg.data],
        "label": cfg.label or _default_label(cfg, init),
        "splits": splits,
        "epochs": best_epoch,
        "seed": cfg.seed,
        "metrics": {
            f"val_{m}_loss": round(kept_val[m], 5)
            for m in (("segmentation",) if cfg.optim.monitor == "last" else (cfg.optim.monitor,))
        },
        "notes": (
            f"{epoch} epochs of {cfg.optim.steps_per_epoch} steps x {cfg.optim.batch_size} "
            f"patches of {cfg.patch} px at {cfg.mpp} um/px; "
            + (
                "the last epoch's weights kept (no early stopping); "
                if cfg.optim.monitor == "last"
                else f"best validation {cfg.optim.monitor} loss at epoch {best_epoch}; "
            )
            + f"{n_parameters(model) / 1e6:.2f} M parameters; "
            f"{minutes:.1f} min on {_hardware()}"
            + (f"; initialised from '{init_id}'" if init_id else "")
        ),
    }
    if norm is not None and norm.skipped:
        training["notes"] += f"; stain normalisation left {norm.skipped} image(s) as they were"
    card = save_checkpoint(model, out, _card_fields(cfg, training, stain_spec))
    (out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    scores = validation_scores(load_predictor(card, amp=False), val_items)
    training["metrics"].update(scores)
    return save_checkpoint(model, out, _card_fields(cfg, training, stain_spec)).path


def fitted_stain(spec: StainSpec, catalog) -> StainSpec:
    """``spec`` with its reference fitted (to the target sample's image, when it names one;
    Macenko without a target: torchstain's default reference)."""
    if spec.method == "none" or spec.params:
        return spec
    from cellbench.models import stain

    if spec.target is None:
        params = {
            "HERef": stain._macenko().HERef.tolist(),
            "maxCRef": stain._macenko().maxCRef.tolist(),
        }
    else:
        from cellbench.data.readers import get_reader
        from cellbench.data.record_cache import records_of

        ds, sid = spec.target.split("/", 1)
        if ds not in {d.id for d in catalog} or not catalog.is_available(ds):
            raise CellbenchError(f"stain target '{spec.target}': no local dataset '{ds}'")
        reader = get_reader(catalog, ds)
        rec = next((r for r in records_of(reader) if r.sample_id == sid), None)
        if rec is None:
            raise CellbenchError(f"stain target '{spec.target}': no sample '{sid}' in '{ds}'")
        params = stain.fit(spec.method, reader.load(rec).image)
    return spec.model_copy(update={"params": params})


def _default_label(cfg: TrainConfig, init) -> str | None:
    """``a>b`` for a fine-tune (on ``b``) of a model trained on ``a``; ``d@centers`` for
    center-held-out training; None (datasets joined by "+") otherwise."""
    name = "+".join(f"{d.dataset}@centers" if d.centers else d.dataset for d in cfg.data)
    if init is not None:
        name = f"{init.training_set}>{name}"
    return None if name == "+".join(d.dataset for d in cfg.data) else name


def _hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
