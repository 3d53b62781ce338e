"""The official scorers and cellbench's presets on the same real predictions (issue 29).

Run by hand, not a test. A bundled model (default ``cb_consep``) predicts the first ``--n``
CoNSeP test tiles (256 x 256, 4 classes); its predictions and the ground truth are then scored

- by **PanNuke-metrics** ``run.py`` (their script, in its own environment, on a fold built in
  PanNuke's layout: channels = CoNSeP's classes, tissue "Colon" for the first half of the
  tiles and "Stomach" for the rest, so that the tissue averaging is exercised) and by
  ``cellbench score instances --preset pannuke``;
- by **CoNIC** ``compute_stats.py`` in ``seg_class`` mode (PQ, mPQ+ over its 6 classes) and
  ``regression`` mode on counts made by the baseline notebook's own ``process_composition``
  (executed from the notebook), and by the ``conic`` preset (``bpq``, ``mpq_plus`` and
  ``multi_r2`` over classes 1-6);
- by the **MoNuSAC** notebook's ``Panoptic_quality`` as the challenge ran it (the notebook at
  commit 48c250d, saved as ``MoNuSAC/PQ_metric_48c250d.ipynb``) and as the repository has it
  now (the matched prediction's id removed), executed from the notebooks, and by the
  ``monusac`` / ``monusac_corrected`` presets;
- by the **MoNuSeg** challenge's AJI (``Aggregated_Jaccard_Index_v1_0.m``, MATLAB: not runnable
  here, so its loop is transliterated below as the reference as understood) and the
  ``monuseg`` preset.

Every figure is printed beside its reference with all its digits, and whether they are equal.

Usage::

    bash benchmarks/setup_official.sh /tmp/venv-official
    python benchmarks/official_protocols.py --official DIR \
        --ref-python /tmp/venv-official/bin/python

``DIR`` holds checkouts named ``PanNuke-metrics``, ``CoNIC`` and ``MoNuSAC`` of
TissueImageAnalytics/PanNuke-metrics, TissueImageAnalytics/CoNIC and ruchikaverma-iitg/MoNuSAC.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

DRIVER = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
cfg = json.loads(open(sys.argv[1]).read())
d = np.load(cfg["arrays"])

def cell_source(nb, needle):
    cells = json.load(open(nb))["cells"]
    srcs = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return next(s for s in srcs if needle in s)

out = {}
if cfg["task"] == "counts":
    from misc.utils import cropping_center
    ns = {"np": np, "cropping_center": cropping_center, "NUM_TYPES": 7}
    exec(cell_source(cfg["notebook"], "def process_composition"), ns)
    for side in ("true", "pred"):
        out[side] = [ns["process_composition"](m).tolist() for m in d[side]]
else:
    ns = {"np": np}
    for name, nb in cfg["notebooks"].items():
        exec(cell_source(nb, "def Panoptic_quality"), ns)
        per_image = []
        for t, p in zip(d["true"], d["pred"]):
            pqs = []
            for c in range(1, 5):
                tc = t[..., 0] * (t[..., 1] == c)
                if not tc.any():
                    continue  # the notebook scores the classes that have a GT file
                pc = p[..., 0] * (p[..., 1] == c)
                pqs.append(float(ns["Panoptic_quality"](tc, pc)))
            per_image.append(float(np.mean(pqs)) if pqs else None)
        out[name] = per_image
print(json.dumps(out))
"""


def predictions(model: str, n: int):
    """Ground truth and a bundled model's predictions on the first ``n`` CoNSeP test tiles."""
    from cellbench.data.catalog import load_catalog
    from cellbench.data.classes import label_map
    from cellbench.data.samples import iter_samples
    from cellbench.models.registry import get_model, load_predictor

    cat = load_catalog()
    card = get_model(model)
    cmap = label_map(card, cat.get("consep"))
    net = load_predictor(card)
    rows = []
    for k, (rec, s) in enumerate(iter_samples(cat, "consep", "test")):
        if k == n:
            break
        inst = net.predict(s.image, s.meta.get("mpp"))
        pc = {i: cmap.get(c) or 0 for i, c in (inst.classes or {}).items()}
        rows.append((rec.sample_id, s.instances, dict(s.classes or {}), inst.labels, pc))
    return rows


def class_map(labels: np.ndarray, classes: dict) -> np.ndarray:
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.int32)
    for i, c in classes.items():
        lut[int(i)] = int(c)
    return lut[labels]


def show(name: str, ours, ref) -> bool:
    same = ours == ref or (ours is None and ref is None)
    verdict = "same" if same else "DIFFERENT"
    print(f"  {name:<34} cellbench {ours!r:<24} official {ref!r:<24} {verdict}")
    return bool(same)


def pannuke(rows, official: Path, ref_python: str, tmp: Path) -> bool:
    from cellbench.metrics.pannuke import score_fold

    n = len(rows)
    true = np.zeros((n, 256, 256, 6))
    pred = np.zeros((n, 256, 256, 6))
    for k, (_, t, tc, p, pc) in enumerate(rows):
        for side, lab, cls in ((true, t, tc), (pred, p, pc)):
            cm = class_map(lab, cls)
            for c in range(1, 5):
                side[k, :, :, c - 1] = np.where(cm == c, lab, 0)
    types = np.array(["Colon"] * (n // 2) + ["Stomach"] * (n - n // 2))
    fold, pr, save = tmp / "fold", tmp / "pred", tmp / "out"
    for d in (fold, pr):
        d.mkdir()
    np.save(fold / "masks.npy", true)
    np.save(fold / "types.npy", types)
    np.save(pr / "masks.npy", pred)
    res = subprocess.run(
        [ref_python, "run.py", f"--true_path={fold}", f"--pred_path={pr}", f"--save_path={save}"],
        cwd=official / "PanNuke-metrics",
        capture_output=True,
        text=True,
        check=True,
    )
    txt = res.stdout
    ref = {m.group(1): float(m.group(2)) for m in re.finditer(r"Average (\w+):(\S+)", txt)}
    cls = {m.group(1): float(m.group(2)) for m in re.finditer(r"^([\w-]+) PQ: (\S+)$", txt, re.M)}
    ours = score_fold(fold, pr)
    print("PanNuke-metrics run.py vs --preset pannuke")
    ok = show("mPQ", ours["mPQ"], ref["mPQ"]) & show("bPQ", ours["bPQ"], ref["bPQ"])
    for name, key in (
        ("Neoplastic", "neoplastic"),
        ("Inflammatory", "inflammatory"),
        ("Connective", "connective"),
    ):
        v = cls.get(name)
        ok &= show(f"{name} PQ", ours["per_class"][key], None if v != v else v)
    return ok


def conic(rows, official: Path, ref_python: str, tmp: Path) -> bool:
    from cellbench.metrics import aggregate_instances, instance_scores

    true = np.stack([np.dstack([t, class_map(t, tc)]) for _, t, tc, _, _ in rows]).astype(np.int32)
    pred = np.stack([np.dstack([p, class_map(p, pc)]) for _, _, _, p, pc in rows]).astype(np.int32)
    np.save(tmp / "true.npy", true)
    np.save(tmp / "pred.npy", pred)
    res = subprocess.run(
        [
            ref_python,
            "compute_stats.py",
            "--mode=seg_class",
            f"--pred={tmp / 'pred.npy'}",
            f"--true={tmp / 'true.npy'}",
        ],
        cwd=official / "CoNIC",
        capture_output=True,
        text=True,
        check=True,
    )
    pq_ref, mpq_ref = (float(v) for v in res.stdout.split("\n")[1].split())
    # counts by the baseline notebook's own process_composition, scored by compute_stats
    np.savez(tmp / "maps.npz", true=true, pred=pred)
    cfg = {
        "task": "counts",
        "arrays": str(tmp / "maps.npz"),
        "notebook": str(official / "CoNIC" / "notebooks" / "baseline.ipynb"),
    }
    counts = _driver(ref_python, cfg, official / "CoNIC", tmp)
    names = ["epithelial", "lymphocyte", "plasma", "neutrophil", "eosinophil", "connective"]
    for side in ("true", "pred"):
        lines = [",".join(names)] + [",".join(str(int(v)) for v in r[1:]) for r in counts[side]]
        (tmp / f"{side}.csv").write_text("\n".join(lines) + "\n")
    res = subprocess.run(
        [
            ref_python,
            "compute_stats.py",
            "--mode=regression",
            f"--pred={tmp / 'pred.csv'}",
            f"--true={tmp / 'true.csv'}",
        ],
        cwd=official / "CoNIC",
        capture_output=True,
        text=True,
        check=True,
    )
    r2_ref = float(res.stdout.split("\n")[1].split()[0])
    per = [
        instance_scores(t, p, "conic", true_classes=tc, pred_classes=pc, classes=range(1, 7))
        for _, t, tc, p, pc in rows
    ]
    agg = aggregate_instances(per, "conic", classes=range(1, 7))
    ours_counts = [[r["counts"]["true"][str(c)] for c in range(1, 7)] for r in per]
    print("CoNIC compute_stats.py vs --preset conic (its printout: 6 significant digits)")
    ok = show("PQ (bPQ)", float(f"{agg['bpq']:.6g}"), float(f"{pq_ref:.6g}"))
    ok &= show("mPQ+", float(f"{agg['mpq_plus']:.6g}"), float(f"{mpq_ref:.6g}"))
    ok &= show("counts (true, central 224)", ours_counts, [r[1:] for r in counts["true"]])
    ok &= show("multi_r2", float(f"{agg['multi_r2']:.6g}"), float(f"{r2_ref:.6g}"))
    return ok


def monusac(rows, official: Path, ref_python: str, tmp: Path) -> bool:
    from cellbench.metrics import aggregate_instances, instance_scores

    true = np.stack([np.dstack([t, class_map(t, tc)]) for _, t, tc, _, _ in rows]).astype(np.int32)
    pred = np.stack([np.dstack([p, class_map(p, pc)]) for _, _, _, p, pc in rows]).astype(np.int32)
    np.savez(tmp / "monusac.npz", true=true, pred=pred)
    nb = official / "MoNuSAC"
    cfg = {
        "task": "pq",
        "arrays": str(tmp / "monusac.npz"),
        "notebooks": {
            "published": str(nb / "PQ_metric_48c250d.ipynb"),
            "now": str(nb / "PQ_metric.ipynb"),
        },
    }
    ref = _driver(ref_python, cfg, nb, tmp)
    print("MoNuSAC PQ_metric.ipynb (Panoptic_quality) vs --preset monusac / monusac_corrected")
    ok = True
    for variant, key in (("monusac", "published"), ("monusac_corrected", "now")):
        per = {}
        for sid, t, tc, p, pc in rows:
            r = instance_scores(t, p, variant, true_classes=tc, pred_classes=pc)
            if variant == "monusac_corrected":  # the notebook scores GT classes only
                vals = [v["pq"] for v in r["per_class"].values() if v["n_true"] > 0]
                r = {**r, "pq": float(np.mean(vals)) if vals else None}
            per[sid] = r
        ours = [per[sid]["pq"] for sid, *_ in rows]
        ok &= show(f"{variant}: per-image PQ ({len(ours)})", ours, ref[key])
        if variant == "monusac":
            agg = aggregate_instances(per, variant)["pq"]
            vals = [v for v in ref[key] if v is not None]
            ok &= show("a-PQ (mean over sub-images)", agg, float(np.mean(vals)))
    return ok


def _driver(ref_python: str, cfg: dict, cwd: Path, tmp: Path):
    (tmp / "driver.py").write_text(DRIVER)
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    res = subprocess.run(
        [ref_python, str(tmp / "driver.py"), str(tmp / "cfg.json"), str(cwd)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def aji_v1_0(gt_map: np.ndarray, predicted_map: np.ndarray) -> float:
    """MoNuSeg's Aggregated_Jaccard_Index_v1_0.m transliterated loop for loop (the reference
    as understood; MATLAB cannot run here)."""
    gt_list = [int(v) for v in np.unique(gt_map) if v]
    pr_list = {int(v): 0 for v in np.unique(predicted_map) if v}
    correct = union = 0
    while gt_list:
        g = gt_map == gt_list[-1]
        match = predicted_map[g]
        if not match.any():
            union += int(g.sum())
        else:
            ji, best = 0.0, None
            for j in np.unique(match[match > 0]):
                m = predicted_map == j
                nji = np.logical_and(g, m).sum() / np.logical_or(g, m).sum()
                if nji > ji:
                    best, ji = int(j), nji
            m = predicted_map == best
            correct += int(np.logical_and(g, m).sum())
            union += int(np.logical_or(g, m).sum())
            pr_list[best] += 1
        gt_list.pop()
    union += sum(int((predicted_map == j).sum()) for j, used in pr_list.items() if not used)
    return correct / union


def monuseg(rows) -> bool:
    from cellbench.metrics import instance_scores

    ours = [instance_scores(t, p, "monuseg")["aji"] for _, t, _, p, _ in rows]
    hov = [instance_scores(t, p, "hovernet")["aji"] for _, t, _, p, _ in rows]
    ref = [aji_v1_0(t, p) for _, t, _, p, _ in rows]
    print("MoNuSeg Aggregated_Jaccard_Index_v1_0.m (transliterated) vs --preset monuseg")
    ok = show("per-image AJI", ours, ref)
    ok &= show("mean AJI", float(np.mean(ours)), float(np.mean(ref)))
    diff = sum(a != b for a, b in zip(hov, ref, strict=True))
    print(f"  (hovernet's AJI differs from the challenge's on {diff} of {len(ref)} images)")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", type=Path, required=True)
    ap.add_argument("--ref-python", required=True)
    ap.add_argument("--model", default="cb_consep")
    ap.add_argument("--n", type=int, default=24)
    a = ap.parse_args()
    rows = predictions(a.model, a.n)
    print(
        f"{a.model} on {len(rows)} CoNSeP test tiles; "
        f"{sum(len(np.unique(p)) - 1 for *_, p, _ in rows)} predicted nuclei\n"
    )
    ok = True
    for fn in (pannuke, conic, monusac):
        with tempfile.TemporaryDirectory() as d:
            ok &= fn(rows, a.official, a.ref_python, Path(d))
    ok &= monuseg(rows)
    print("\nall identical" if ok else "\nDIFFERENCES above")


if __name__ == "__main__":
    main()
