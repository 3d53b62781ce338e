"""Write the notebooks from their cell sources (kept here so diffs stay readable).

Run ``python notebooks/build.py``; the notebooks are committed without outputs and executed in
CI by ``tests/test_notebooks.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

NOTEBOOKS = {
    "02_ocelot_detection": [
        ("md", """# OCELOT cell detection: the fold-0 model per class, organ and center

The OCELOT 2023 fold-0 model's cell detections, stored with the data, scored with the
challenge's convention (greedy by confidence within 15 px, ~3 um; counts pooled) through the
evaluation machinery into the metrics store, then broken down by organ and by TCGA tissue
source site (center), with 95% bootstrap intervals resampled by patient where possible."""),
        ("code", """import os
from pathlib import Path

import polars as pl

from cellbench.analysis import dataset_figures, group_summary
from cellbench.evaluate import EvalSpec, evaluate
from cellbench.figures import save_figure, summary_heatmap
from cellbench.store import Store

OUT = Path(os.environ.get("CELLBENCH_FIGURES", "figures"))
run = evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"))
store = Store()
figs = dataset_figures(store, [run["run_id"]])
figs.filter(pl.col("metric").is_in(["precision", "recall", "f1", "mf1"]))"""),
        ("md", "Mean per-image F1 per organ and class (the seed-004 view per organ):"),
        ("code", """ids = [run["run_id"]]
organ = group_summary(store, ids, "f1", ["organ", "class"], cls=None)
organ = organ.filter(pl.col("class") != "all")
fig = summary_heatmap(organ, "organ", "class", "f1", "OCELOT fold 0: F1 per organ and class")
save_figure(fig, OUT, "02_ocelot_f1_organ_class")
organ"""),
        ("code", """center = group_summary(store, ids, "f1", ["center", "class"], cls=None)
center = center.filter(pl.col("class") != "all")
fig = summary_heatmap(center, "center", "class", "f1",
                      "OCELOT fold 0: F1 per center (TCGA tissue source site) and class")
save_figure(fig, OUT, "02_ocelot_f1_center_class")
center.sort("n", descending=True).head(10)"""),
    ],
    "04_metric_conventions": [
        ("md", """# Metric conventions: the same predictions under each preset

Real predictions (the bioimage.io nucleus model on the DSB 2018 images, and the OCELOT fold-0
model's cell detections) scored under every preset cellbench reproduces, and the reasons where
two presets disagree. Everything here calls the `cellbench` library."""),
        ("code", """import os
from pathlib import Path

import polars as pl

from cellbench import metrics
from cellbench.catalog import load_catalog
from cellbench.figures import preset_bars, save_figure
from cellbench.models.registry import load_predictor
from cellbench.samples import iter_samples, load_predictions

OUT = Path(os.environ.get("CELLBENCH_FIGURES", "figures"))
cat = load_catalog()"""),
        ("md", "## Instances: DSB 2018 with the bioimage.io model"),
        ("code", """model = load_predictor("unet2d_nuclei_broad_onnx")
pairs = {r.sample_id: (s.instances, model.predict(s.image).labels)
         for r, s in iter_samples(cat, "dsb2018")}
rows = []
for preset in metrics.INSTANCE_PRESETS:
    per = {k: metrics.instance_scores(t, p, preset=preset) for k, (t, p) in pairs.items()}
    agg = metrics.aggregate_instances(per, preset)
    rows += [{"preset": preset, "metric": m, "value": agg[m]} for m in ("pq", "dq", "sq", "f1")]
table = pl.DataFrame(rows)
table.pivot(on="preset", index="metric", values="value")"""),
        ("code", """for p in metrics.INSTANCE_PRESETS:
    print(metrics.describe(p), end="\\n\\n")"""),
        ("md", "Where HoVer-Net (IoU > 0.5, mean over images) and StarDist (IoU >= 0.5, pooled "
               "counts) disagree, and why:"),
        ("code", """diff = metrics.compare_presets(pairs, "hovernet", "stardist")
pl.DataFrame(diff["aggregate"])"""),
        ("md", "## Points: OCELOT fold 0, greedy (challenge) vs Hungarian matching"),
        ("code", """preds = load_predictions(cat, "ocelot", "ocelot_fold0_model")
gts = {r.sample_id: s.points for r, s in iter_samples(cat, "ocelot")}
names = {str(c.id): c.name for c in cat.get("ocelot").classes}
prows = []
for preset in ("ocelot", "hungarian"):
    per = {k: metrics.point_scores(gts[k], preds[k], preset=preset) for k in gts}
    agg = metrics.aggregate_points(per, preset)
    prows += [{"preset": preset, "metric": f"F1 {names.get(str(c), c)}", "value": v["f1"]}
              for c, v in agg["per_class"].items()]
    prows.append({"preset": preset, "metric": "mF1", "value": agg["mf1"]})
points = pl.DataFrame(prows)
points"""),
        ("code", """fig = preset_bars(pl.concat([table, points]))
[str(p) for p in save_figure(fig, OUT, "04_metric_conventions")]"""),
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
