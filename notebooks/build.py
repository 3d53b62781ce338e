"""Write the notebooks from their cell sources (kept here so diffs stay readable).

Run ``python notebooks/build.py``; the notebooks are committed without outputs and executed in
CI by ``tests/test_notebooks.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SETUP = """import os
from pathlib import Path

import polars as pl

from cellbench.viz import paper
from cellbench.viz.figures import save_figure

OUT = Path(os.environ.get("CELLBENCH_FIGURES", "figures"))


def save(figs):
    \"\"\"Write each figure as SVG + PDF under OUT; list the files.\"\"\"
    return [p.name for name, (fig, _) in figs.items() for p in save_figure(fig, OUT, name)]"""

NOTEBOOKS = {
    "01_catalog_tour": [
        ("md", """# Catalog tour: datasets, metadata distributions, overlays

Every dataset of the seed papers is in the catalog, with or without a local copy; this tour
lists them, then looks at the local samples: how many per dataset, organ, center (TCGA tissue
source site where the barcode gives one) and stain, how many nuclei each holds, their field of
view in microns, and one ground-truth overlay per dataset."""),
        ("code", SETUP),
        ("code", """from cellbench.data.catalog import load_catalog
from cellbench.data.samples import catalog_rows, sample_table

cat = load_catalog()
rows = pl.DataFrame(catalog_rows(cat))
rows.select("id", "available", "n_samples", "stain", "organs", "name")"""),
        ("code", """table = sample_table(cat)
table.group_by("dataset").agg(
    pl.len().alias("samples"),
    pl.col("n_objects").sum().alias("objects"),
    pl.col("center").n_unique().alias("centers"),
    pl.col("organ").n_unique().alias("organs"),
    pl.col("mpp").mean().round(3).alias("mpp"),
).sort("dataset")"""),
        ("code", """figs = paper.catalog_figures(cat, table)
figs["01_samples_per_organ"][0]"""),
        ("code", """figs["01_overlay_consep"][0]"""),
        ("code", "save(figs)"),
    ],
    "02_ocelot_detection": [
        ("md", """# OCELOT cell detection: the fold-0 model per class, organ and center

The OCELOT 2023 fold-0 model's cell detections, stored with the data, scored with the
challenge's convention (greedy by confidence within 15 px, ~3 um; counts pooled) through the
evaluation machinery into the metrics store, then broken down by organ and by TCGA tissue
source site (center), with 95% bootstrap intervals resampled by patient where possible."""),
        ("code", SETUP),
        ("code", """from cellbench.analysis import dataset_figures
from cellbench.runs.evaluate import EvalSpec, evaluate
from cellbench.runs.store import Store

run = evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"))
store = Store()
figs = dataset_figures(store, [run["run_id"]])
figs.filter(pl.col("metric").is_in(["precision", "recall", "f1", "mf1"]))"""),
        ("md", "Mean per-image F1 per organ and class (seed 004 per organ), then per center:"),
        ("code", """figs = paper.ocelot_figures(store, run["run_id"])
figs["02_ocelot_f1_organ_class"][0]"""),
        ("code", """figs["02_ocelot_f1_center_class"][1].sort("n", descending=True).head(10)"""),
        ("code", "save(figs)"),
        ("md", """Cells and tissue (seed 004 Tables 3 and 4). OCELOT's local copy has cell points
but no tissue labels, so its tables cannot be drawn here; with tissue labels (the reader's
`tissue_mask` option) `cellbench.analysis.cell_tissue` counts the cells per tissue class and the
tissue pixel ratios, and scores tissue segmentations by per-class IoU / mIoU. What the local data
allows: the PUMA baseline's (HoVer-NeXt + nnU-Net) own nuclei and tissue on its two melanoma
regions of interest, predictions on both sides (PUMA's ground truth is not local)."""),
        ("code", """from cellbench.core.config import data_root

t3, t4 = paper.puma_cell_tissue(data_root() / "puma")
t3.pivot(on="tissue", index="cell", values="cells")"""),
        ("code", """t3.filter(pl.col("tissue") == "Tumor").select("cell", "cells", "share")"""),
        ("code", """t4"""),
    ],
    "03_cross_dataset": [
        ("md", """# Cross-dataset generalisation, ranking and fusion (local data)

Seeds 000, 002 and 003 on the local data.

The reference experiments (`cellbench reference`, committed under `results/reference`; the
checkpoints were trained on CPU, see their cards): models trained on one dataset each
(MoNuSeg, CoNSeP, GBM, MoNuSAC) and on the top-k datasets of their ranking merged, each tested
on the test split of every local nucleus dataset (DSB 2018 is fluorescence: expected to fail),
HoVer-Net preset. Means are over test images with 95% bootstrap intervals (resampling
patients, else slides). Then the ranking and top-k fusion on the unified test set of every
local H&E nucleus dataset, per-TCGA-center results, the pretrain -> fine-tune pairs across
label levels (seed 002), the Pap-smear models under the ISBI 2014 protocol, and the MoNuSeg
checkpoint trained with whole centers held out (seed 000's protocol)."""),
        ("code", SETUP),
        ("code", """from cellbench import analysis
from cellbench.runs.store import Store

store = Store()
matrix_runs = paper.experiment_runs(store, "matrix")
analysis.model_summary(store, matrix_runs + paper.experiment_runs(store, "pair"))"""),
        ("code", """figs = paper.cross_dataset_figures(store)
analysis.as_matrix(figs["03_train_test_pq"][1])"""),
        ("code", """figs["03_train_test_pq"][0]"""),
        ("md", "C_ij in both normalisations (see `analysis.CROSS_FORMS`):"),
        ("code", """for form in ("diagonal", "paper"):
    print(analysis.CROSS_FORMS[form])
    print(analysis.as_matrix(figs[f"03_cij_{form}"][1], value="value"))"""),
        ("md", """Ranking of the training sets on the unified test set `unified-he@v1`
(`cellbench testset show unified-he`): NucFuse-test's rule (14 tiles per dataset from the
test split, tiles >= 256 px, MoNuSAC images with macrophages left out) over every local H&E
nucleus dataset: MoNuSeg, CoNSeP, CryoNuSeg, MoNuSAC and GBM. Each test dataset weighs the same
(seed 003's design) or, as the labelled alternative, every test sample (CoNSeP's 224 patches
then decide). Only complete runs on exactly the test set's members enter."""),
        ("code", """from cellbench.data import testsets

ts = testsets.load("unified-he@v1")
print(ts.ref, {d: len(ts.sample_ids(d)) for d in ts.datasets}, ts.notes)
for w in analysis.WEIGHTINGS:
    print(w, "-", analysis.WEIGHTINGS[w])
    cols = ("rank", "train_datasets", "mean", "ci_low", "ci_high", "n", "n_datasets")
    print(figs[f"03_ranking_{w}"][1].select(cols))"""),
        ("md", """Two model families (seed 003 trains HoVerNeXt and CellViT): `hovernet_lite` and
`unet_lite` (a U-Net whose nuclei are split by a watershed of the distance transform), on the
same training sets. The ranking's Mean Rank column is the rank of the mean PQ over the families
(seed 003 Table 2):"""),
        ("code", """rank = figs["03_ranking_per-dataset"][1]
rank.pivot(on="family", index="train_datasets", values="mean").join(
    rank.select("train_datasets", "mean_rank").unique(), on="train_datasets"
).sort("mean_rank")"""),
        ("md", """Top-k fusion: the fused training sets are prefixes of one overall order, the
ranking by mean PQ over the families (seed 003 §4.2), for every family alike; expected(k) = for
each test subset the best of the top-k single-dataset models, averaged over subsets; the gain is
observed - expected. The U-Net family has its top-2 model only."""),
        ("code", """fus = figs["03_fusion"][1].drop("run_ids", "command")
fus.with_columns(pl.col(pl.Float64).round(3))"""),
        ("code", """figs["03_fusion"][0]"""),
        ("md", """Per TCGA center (tissue source site) of the test splits of MoNuSeg, MoNuSAC and
TCGA-GBM: every matrix model's mean PQ with n (GBM's TCGA test slides are all of site FG;
MoNuSAC's instances are approximate, touching nuclei of one class merge)."""),
        ("code", """centers = figs["03_tcga_centers"][1]
wide = centers.pivot(on="train_datasets", index=["test_dataset", "center"], values="mean")
wide.sort("test_dataset", "center").with_columns(pl.col(pl.Float64).round(3))"""),
        ("md", """Training curves of the bundled checkpoints (`train_log.jsonl`; several models of
one recipe with different seeds would be drawn as their mean with a 95% t-band)."""),
        ("code", """from cellbench.analysis.training import aggregate_logs
from cellbench.viz import figures

for m in ("cb_monuseg", "cb_gbm", "cb_monusac", "cb_fused_top4"):
    fig = figures.loss_curves(aggregate_logs([m]))
    fig.update_layout(title=f"Training curves: {m}").show()"""),
        ("md", """Pretrain -> fine-tune across label levels (seed 002): CoNSeP's 4 classes ->
MoNuSeg nuclei; and a 6-leaf-class network pretrained on CoNSeP, where lymphocytes, macrophages and
neutrophils are one class (inflammatory), fine-tuned on MoNuSAC's leaf classes, beside the
MoNuSAC-only model: PQ per MoNuSAC class."""),
        ("code", """figs["03_pretrain_finetune"][1]"""),
        ("code", """levels = figs["03_label_levels"][1]
levels.pivot(on="class", index="model_id", values="mean")"""),
        ("md", """The label-level pair trained twice: with the focal Tversky term in seed 002's
literal form (`ft_form: literal`, every other bundled card) and in its per-class form
(`cb_consep_c6_pc`, `cb_consep_c6_pc_to_monusac`); mPQ and F_t per class on MoNuSAC test:"""),
        ("code", """from cellbench.analysis import dataset_figures

lv = paper.experiment_runs(store, "levels")
d = dataset_figures(store, lv).filter(
    (pl.col("test_dataset") == "monusac") & pl.col("metric").is_in(["mpq", "bpq", "f_d", "f_t"])
)
d.pivot(on="model_id", index=["metric", "class"], values="value")"""),
        ("md", """Stain handling (seed 003 Fig. 8) with the U-Net recipe on MoNuSeg and CoNSeP: no
normalisation or stain jitter (`plain`), Macenko normalisation in training and at inference
(`macenko`, torchstain), HED stain jitter (`augment`); mean PQ per test set:"""),
        ("code", """st = figs["03_stain"][1]
st.pivot(on="test_dataset", index="training set / arm", values="mean")"""),
        ("md", """Pap-smear cytology under the ISBI 2014 protocol: EDF nuclei (real images) and
overlapping whole cells (synthetic images); detected objects have Dice > 0.7."""),
        ("code", """cyto = figs["03_cytology_isbi2014"][1]
cyto.pivot(on="metric", index="preset", values="value")"""),
        ("code", """figs["03_held_out_centers"][1]"""),
        ("code", "save(figs)"),
    ],
    "04_metric_conventions": [
        ("md", """# Metric conventions: the same predictions under each preset

Real predictions (the bioimage.io nucleus model on the DSB 2018 images, and the OCELOT fold-0
model's cell detections) scored under every preset cellbench reproduces, and the reasons where
two presets disagree. Everything here calls the `cellbench` library."""),
        ("code", SETUP),
        ("code", """from cellbench import metrics
from cellbench.data.catalog import load_catalog

cat = load_catalog()
table, pairs = paper.preset_table(cat)
table.pivot(on="preset", index="metric", values="value")"""),
        ("code", """for p in metrics.INSTANCE_PRESETS:
    print(metrics.describe(p), end="\\n\\n")"""),
        ("md", "Where HoVer-Net (IoU > 0.5, mean over images) and StarDist (IoU >= 0.5, pooled "
               "counts) disagree, and why:"),
        ("code", """diff = metrics.compare_presets(pairs, "hovernet", "stardist")
pl.DataFrame(diff["aggregate"])"""),
        ("code", """save(paper.metric_convention_figures(cat, table))"""),
    ],
}


def build() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.cells = [
            nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
            for kind, src in cells
        ]
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    build()
