"""The notebooks' figures, built once here; the notebooks and ``cellbench figures`` call these.

Each function returns ``{file name: (figure, data frame)}`` and gives an empty mapping when
what it needs (local data, runs in the store) is absent, so ``cellbench figures`` writes
whatever can be drawn:

- :func:`catalog_figures` (notebook 01): samples per dataset / organ / center / stain, nuclei
  per sample, image size in microns, and one ground-truth overlay per dataset with pixels;
- :func:`ocelot_figures` (02): the OCELOT fold-0 run's F1 per organ x class and center x class;
- :func:`cross_dataset_figures` (03): the reference experiments (:mod:`cellbench.runs.reference`):
  train x test PQ matrix, C_ij in both normalisations, ranking, fusion, the pretrain ->
  fine-tune pair and the held-out centers;
- :func:`metric_convention_figures` (04): one set of real predictions under every preset.
"""

from __future__ import annotations

import contextlib

import polars as pl

from cellbench.viz import figures as F

Figures = dict[str, tuple]


# -- 01 catalog tour ---------------------------------------------------------------------------


def catalog_figures(catalog, table: pl.DataFrame, overlays: bool = True) -> Figures:
    """Metadata distributions of the local samples and one overlay per dataset."""
    out: Figures = {}
    if table is None or not table.height:
        return out
    for col in ("dataset", "organ", "center", "stain"):
        fig = F.count_bar(table, col)
        if col == "center":  # one center (CoNSeP's 656 patches) dwarfs the TCGA sites
            fig.update_yaxes(type="log", title="samples (log)")
        out[f"01_samples_per_{col}"] = (fig, table.group_by(col).len())
    out["01_nuclei_per_sample"] = (
        F.histogram(table, "n_objects", "Annotated objects per sample", nbins=30),
        table.select("dataset", "sample_id", "n_objects"),
    )
    fov = table.with_columns(field_um=(pl.col("width") * pl.col("mpp")).round(1)).select(
        "dataset", "sample_id", "mpp", "field_um"
    )
    out["01_field_of_view"] = (
        F.histogram(fov, "field_um", "Field of view (width)", unit="um"),
        fov,
    )
    if overlays:
        from cellbench.data.samples import iter_samples
        from cellbench.viz.overlay import sample_overlay, thumbnail

        for ds in table["dataset"].unique(maintain_order=True).to_list():
            _, s = next(iter_samples(catalog, ds))
            if s.image is None:
                continue
            img = thumbnail(sample_overlay(s, catalog.get(ds).classes), 512)
            title = f"{ds}: {s.sample_id} ({s.n_objects} objects)"
            out[f"01_overlay_{ds}"] = (
                F.image_figure(img, title),
                pl.DataFrame({"dataset": [ds], "sample_id": [s.sample_id]}),
            )
    return out


# -- 02 OCELOT ---------------------------------------------------------------------------------


def ocelot_run(store, predictions: str = "ocelot_fold0_model") -> str | None:
    """The newest complete run of a stored OCELOT prediction set, if any."""
    runs = store.runs()
    if runs.is_empty():
        return None
    runs = runs.filter(
        (pl.col("model_id") == f"predictions:{predictions}") & (pl.col("status") == "complete")
    )
    return runs.sort("finished", descending=True)["run_id"][0] if runs.height else None


def ocelot_figures(store, run_id: str | None = None) -> Figures:
    """F1 per organ x class and per center x class of an OCELOT run (seed 004's view): the
    challenge's own figure per group, counts pooled over the group's images as the official
    scorer pools them (:func:`cellbench.analysis.pooled_groups`; bladder BC 0.6072, kidney BC
    0.3000 on fold 0). A run without per-image results (a compact export) falls back to the
    mean of per-image F1, and its title says so."""
    from cellbench.analysis import group_summary, pooled_groups
    from cellbench.core.errors import CellbenchError

    run_id = run_id or ocelot_run(store)
    if run_id is None:
        return {}
    out: Figures = {}
    for key, what in (("organ", "organ"), ("center", "center (TCGA tissue source site)")):
        try:
            p = pooled_groups(store, run_id, key)
            s = (
                p.filter((pl.col("metric") == "f1") & (pl.col("class") != "all"))
                .rename({"group": key, "value": "mean"})
                .select(key, "class", "mean", "n")
            )
            how = "pooled counts, as the challenge scores"
        except CellbenchError:
            s = group_summary(store, [run_id], "f1", [key, "class"], cls=None)
            s = s.filter(pl.col("class") != "all")
            how = "mean of per-image F1"
        title = f"OCELOT fold 0: F1 per {what} and class ({how})"
        out[f"02_ocelot_f1_{key}_class"] = (F.summary_heatmap(s, key, "class", "f1", title), s)
    return out


#: PUMA's tissue labels (its challenge interface: "Background 0, Stroma 1, Blood Vessel 2,
#: Tumor 3, Epidermis 4, Necrosis 5").
PUMA_TISSUE = {
    0: "Background",
    1: "Stroma",
    2: "Blood Vessel",
    3: "Tumor",
    4: "Epidermis",
    5: "Necrosis",
}


def puma_cell_tissue(root) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Seed 004's Tables 3 and 4 on what the local data allows: the PUMA baseline's
    (HoVer-NeXt + nnU-Net) own outputs for its two melanoma regions of interest: the nuclei
    it found (centroids of its polygons, per class) inside each tissue class it found, and its
    tissue classes' pixel shares. Predictions on both sides, no ground truth (none is local);
    nuclei and tissue share one 1024^2 grid. Returns ``(table 3, table 4)``."""
    from pathlib import Path

    import numpy as np

    from cellbench.analysis import cell_tissue as CT
    from cellbench.data.imageio import read_image
    from cellbench.data.readers.grand_challenge import read_gc_polygons

    root = Path(root)
    names: dict[str, int] = {}
    pairs, masks = [], []
    for roi in sorted(p for p in root.iterdir() if p.is_dir()):
        tissue = read_image(roi / "tissue_mask.tif")
        polys = read_gc_polygons(roi / "melanoma-10-class-nuclei-segmentation.json")
        xy = np.array([p.xy.mean(axis=0) for p in polys]).reshape(-1, 2)
        cls = np.array([names.setdefault(p.name, len(names) + 1) for p in polys], np.int64)
        pairs.append((cls, CT.tissue_of_cells(xy, tissue)))
        masks.append(tissue)
    cells = {i: name for name, i in sorted(names.items())}  # rows by class name
    t3 = CT.cell_tissue_counts(pairs, cells, PUMA_TISSUE)
    return t3, CT.tissue_pixel_ratios(masks, PUMA_TISSUE)


# -- 03 cross-dataset --------------------------------------------------------------------------


def experiment_runs(store, experiment: str) -> list[str]:
    """Newest complete run of each request of a reference experiment in the store
    (:mod:`cellbench.runs.reference`), found from the run records alone (no data needed)."""
    from cellbench.runs import reference as R

    runs = store.runs()
    if runs.is_empty() or "model_id" not in runs.columns:
        return []
    for col in ("test_set", "split", "preset"):
        if col not in runs.columns:
            runs = runs.with_columns(pl.lit(None, pl.Utf8).alias(col))
    runs = runs.filter(pl.col("status") == "complete")
    split_runs = pl.col("test_set").is_null()

    def on(pairs) -> pl.Expr:
        return pl.any_horizontal(
            [(pl.col("test_dataset") == d) & pl.col("split").eq_missing(s) for d, s in pairs]
        )

    hovernet = pl.col("preset") == "hovernet"
    models = pl.col("model_id").is_in
    if experiment == "matrix":
        sel = models(list(R.MATRIX_MODELS)) & hovernet & split_runs & on(R.TEST_SETS)
    elif experiment == "unified":
        sel = models(list(R.MATRIX_MODELS)) & hovernet & (pl.col("test_set") == R.UNIFIED)
    elif experiment == "pair":
        sel = models(list(R.PAIR)) & hovernet & split_runs & on(R.TEST_SETS)
    elif experiment == "levels":
        sel = models(list(R.LEVELS)) & hovernet & split_runs
        sel = sel & on([("monusac", "test"), ("consep", "test")])
    elif experiment == "stain":
        arms = [m for a in R.STAIN.values() for m in a.values()]
        sel = models(arms) & hovernet & split_runs & on(R.TEST_SETS)
    elif experiment == "cytology":
        sel = (pl.col("preset") == "isbi2014") & pl.any_horizontal(
            [
                (pl.col("model_id") == m) & (pl.col("test_dataset") == d) & (pl.col("split") == s)
                for m, d, s in R.CYTOLOGY
            ]
        )
    elif experiment == "centers":
        sel = (pl.col("model_id") == R.CENTERS_MODEL) & hovernet & pl.col("split").is_null()
    else:
        raise KeyError(f"unknown experiment '{experiment}' (choose {', '.join(R.EXPERIMENTS)})")
    runs = runs.filter(sel)
    sort = "finished" if "finished" in runs.columns else "created"
    latest = runs.sort(sort, descending=True).unique(
        ["model_id", "test_dataset", "split", "test_set"], keep="first"
    )
    return sorted(latest["run_id"].to_list())


def tcga_center_table(store, metric: str = "pq", n_boot: int = 1000) -> pl.DataFrame:
    """Mean per-sample ``metric`` of every matrix model per TCGA center (tissue source site)
    of the test splits of MoNuSeg, MoNuSAC and TCGA-GBM (:data:`reference.TCGA_DATASETS`),
    with n and bootstrap CIs: rows ``train_datasets, test_dataset, center, ...``."""
    from cellbench import analysis as A
    from cellbench.runs import reference as R

    ids = experiment_runs(store, "matrix")
    runs = store.runs().filter(pl.col("run_id").is_in(ids))
    ids = runs.filter(pl.col("test_dataset").is_in(list(R.TCGA_DATASETS)))["run_id"].to_list()
    if not ids:
        return pl.DataFrame()
    s = A.group_summary(
        store, ids, metric, ["train_datasets", "test_dataset", "center"], n_boot=n_boot
    )
    return s.filter(pl.col("center").is_not_null()).sort(["train_datasets", "center"])


def cross_dataset_figures(store, metric: str = "pq", n_boot: int = 1000) -> Figures:
    """Seed 003's figures on the reference runs (matrix on each test split; ranking and fusion
    on the unified test set), the label-level pairs, per-TCGA-center results, the cytology
    models under the ISBI 2014 protocol and the held-out centers."""
    from cellbench import analysis as A
    from cellbench.runs import reference as R

    out: Figures = {}
    ids = experiment_runs(store, "matrix")
    if ids:
        long = A.train_test_matrix(store, metric, run_ids=ids, n_boot=n_boot)
        out[f"03_train_test_{metric}"] = (
            F.matrix_heatmap(
                long, "mean", f"Mean {metric}: trained on (rows), tested on (columns)", metric
            ),
            long,
        )
        for form in ("diagonal", "paper"):
            cij = A.cross_correlation(long, form)
            out[f"03_cij_{form}"] = (
                F.matrix_heatmap(cij, "value", A.CROSS_FORMS[form], "C_ij", zmid=1.0),
                cij,
            )
    unified = ids + experiment_runs(store, "unified")
    if ids:
        for weighting in A.WEIGHTINGS:
            rank = A.ranking(
                store, unified, metric, n_boot=n_boot, weighting=weighting, test_set=R.UNIFIED
            )
            out[f"03_ranking_{weighting}"] = (F.ranking_bars(rank, metric), rank)
        fus = A.fusion(store, unified, metric, n_boot=n_boot, test_set=R.UNIFIED)
        out["03_fusion"] = (F.fusion_curve(fus, metric), fus)
        centers = tcga_center_table(store, metric, n_boot)
        if centers.height:
            c = centers.with_columns(
                pl.format("{} ({})", pl.col("center"), pl.col("test_dataset")).alias(
                    "center (test set)"
                )
            )
            title = f"Mean {metric} per center of the test splits (n per cell)"
            fig = F.summary_heatmap(c, "center (test set)", "train_datasets", metric, title)
            fig.update_layout(height=max(450, 34 * c["center (test set)"].n_unique() + 200))
            out["03_tcga_centers"] = (fig, centers)
    pair = experiment_runs(store, "pair")
    if pair:
        s = A.group_summary(store, pair, metric, ["model_id", "test_dataset"], n_boot=n_boot)
        title = f"Pretrain on CoNSeP (4 classes) -> fine-tune on MoNuSeg (nucleus): {metric}"
        out["03_pretrain_finetune"] = (F.ci_bars(s, "test_dataset", metric, "model_id", title), s)
    levels = experiment_runs(store, "levels")
    if levels:
        s = A.group_summary(
            store, levels, metric, ["model_id", "test_dataset", "class"], cls=None, n_boot=n_boot
        )
        s = s.filter(pl.col("test_dataset") == "monusac")
        title = (
            f"CoNSeP (inflammatory level) -> MoNuSAC (leaf classes): {metric} per class on "
            "MoNuSAC test"
        )
        out["03_label_levels"] = (F.summary_heatmap(s, "model_id", "class", metric, title), s)
    stain = experiment_runs(store, "stain")
    if stain:
        s = stain_table(store, stain, metric, n_boot)
        title = (
            f"Stain handling (seed 003 Fig. 8), U-Net family: mean {metric} per test set, rows "
            "training set / arm"
        )
        out["03_stain"] = (
            F.summary_heatmap(s, "training set / arm", "test_dataset", metric, title),
            s,
        )
    cyto = experiment_runs(store, "cytology")
    if cyto:
        t = cytology_table(store, cyto)
        title = "Pap smears, ISBI 2014 protocol (detected: Dice > 0.7)"
        out["03_cytology_isbi2014"] = (F.preset_bars(t, title=title), t)
    centers = experiment_runs(store, "centers")
    if centers:
        s = A.group_summary(store, centers, metric, ["center", "organ"], n_boot=n_boot)
        title = f"{R.CENTERS_MODEL}: {metric} per held-out center (never seen in training)"
        out["03_held_out_centers"] = (F.ci_bars(s, "center", metric, "organ", title), s)
    return out


#: The ISBI 2014 dataset figures, in the challenge's order, and the instance figures beside.
ISBI_FIGURES = ("dsc", "fno", "tpp", "fpp", "fdro", "pq", "aji")


def stain_table(store, run_ids: list[str], metric: str = "pq", n_boot: int = 1000) -> pl.DataFrame:
    """Mean per-sample ``metric`` of the stain experiment's runs per test dataset, the rows
    named ``<training set> / <arm>`` (arms: :data:`cellbench.runs.reference.STAIN`)."""
    from cellbench import analysis as A
    from cellbench.runs import reference as R

    arm = {m: f"{ds} / {a}" for ds, arms in R.STAIN.items() for a, m in arms.items()}
    s = A.group_summary(store, run_ids, metric, ["model_id", "test_dataset"], n_boot=n_boot)
    return s.with_columns(
        pl.col("model_id").replace_strict(arm, default=None).alias("training set / arm")
    ).sort("training set / arm", "test_dataset")


def cytology_table(store, run_ids: list[str]) -> pl.DataFrame:
    """The dataset rows of ISBI 2014 runs: ``preset`` (= ``model -> dataset``), ``metric``,
    ``value`` (the layout of :func:`preset_table`, so :func:`figures.preset_bars` draws it)."""
    rows = (
        store.scan(run_ids)
        .filter(
            (pl.col("level") == "dataset")
            & (pl.col("class") == "all")
            & pl.col("metric").is_in(list(ISBI_FIGURES))
        )
        .select("model_id", "test_dataset", "metric", "value")
        .collect()
    )
    order = {m: i for i, m in enumerate(ISBI_FIGURES)}
    return (
        rows.with_columns(
            preset=pl.format("{} -> {}", pl.col("model_id"), pl.col("test_dataset")),
            _o=pl.col("metric").replace_strict(order, default=99),
        )
        .sort(["preset", "_o"])
        .select("preset", "metric", "value")
    )


# -- 04 metric conventions ---------------------------------------------------------------------


def preset_table(catalog, model: str = "unet2d_nuclei_broad_onnx") -> tuple[pl.DataFrame, dict]:
    """PQ/DQ/SQ/F1 of a model on DSB 2018 under every instance preset, and OCELOT fold-0
    per-class F1 / mF1 under greedy (challenge) and Hungarian matching.

    Returns the long table (``preset, metric, value``) and the DSB ``{sample: (true, pred)}``
    instance maps (for :func:`cellbench.metrics.compare_presets`).
    """
    from cellbench import metrics
    from cellbench.data.samples import iter_samples, load_predictions
    from cellbench.models.registry import load_predictor

    rows = []
    net = load_predictor(model)
    pairs = {
        r.sample_id: (s.instances, net.predict(s.image).labels)
        for r, s in iter_samples(catalog, "dsb2018")
    }
    for preset in metrics.INSTANCE_PRESETS:
        if metrics.PRESETS[preset].needs_classes:
            continue  # DSB has no classes
        per = {k: metrics.instance_scores(t, p, preset=preset) for k, (t, p) in pairs.items()}
        agg = metrics.aggregate_instances(per, preset)
        rows += [{"preset": preset, "metric": m, "value": agg[m]} for m in ("pq", "dq", "sq", "f1")]
    preds = load_predictions(catalog, "ocelot", "ocelot_fold0_model")
    gts = {r.sample_id: s.points for r, s in iter_samples(catalog, "ocelot")}
    names = {str(c.id): c.name for c in catalog.get("ocelot").classes}
    for preset in ("ocelot", "hungarian"):
        per = {k: metrics.point_scores(gts[k], preds[k], preset=preset) for k in gts}
        agg = metrics.aggregate_points(per, preset)
        rows += [
            {"preset": preset, "metric": f"F1 {names.get(str(c), c)}", "value": v["f1"]}
            for c, v in agg["per_class"].items()
        ]
        rows.append({"preset": preset, "metric": "mF1", "value": agg["mf1"]})
    return pl.DataFrame(rows), pairs


def metric_convention_figures(catalog, table: pl.DataFrame | None = None) -> Figures:
    """The same predictions under each preset (needs the DSB and OCELOT data)."""
    if table is None:
        if not all(catalog.is_available(d) for d in ("dsb2018", "ocelot")):
            return {}
        table, _ = preset_table(catalog)
    return {"04_metric_conventions": (F.preset_bars(table), table)}


def all_figures(store, catalog, table: pl.DataFrame | None) -> Figures:
    """Every notebook figure that can be drawn from this store and data."""
    out: Figures = {}
    if table is not None:
        out.update(catalog_figures(catalog, table))
    out.update(ocelot_figures(store))
    out.update(cross_dataset_figures(store))
    with contextlib.suppress(KeyError):  # the bioimage.io model is absent (no data root)
        out.update(metric_convention_figures(catalog))
    return out
