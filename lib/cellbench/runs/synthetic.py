"""Synthetic instance maps and predictions for tests, benchmarks and demos.

Not data: reproducible random tiles with the failure modes that metrics must handle (shifted
outlines, missed nuclei, false positives, merged and split nuclei, non-contiguous ids).
"""

from __future__ import annotations

import numpy as np


def random_instances(
    shape: tuple[int, int],
    n: int,
    radius: tuple[float, float] = (5.0, 12.0),
    seed: int = 0,
    overlap: bool = False,
) -> np.ndarray:
    """``(H, W) int32`` map of up to ``n`` disc-like nuclei (ids ``1..n``, 0 = background).

    Ellipses with random radii (pixels) and orientations; later nuclei do not overwrite
    earlier ones unless ``overlap`` (then the last one drawn wins, leaving touching nuclei).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    lab = np.zeros(shape, dtype=np.int32)
    cy = rng.uniform(0, h, n)
    cx = rng.uniform(0, w, n)
    ra = rng.uniform(*radius, n)
    rb = ra * rng.uniform(0.6, 1.0, n)
    th = rng.uniform(0, np.pi, n)
    for i in range(n):
        r = int(np.ceil(ra[i])) + 1
        y0, y1 = max(int(cy[i]) - r, 0), min(int(cy[i]) + r + 1, h)
        x0, x1 = max(int(cx[i]) - r, 0), min(int(cx[i]) + r + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - cy[i], xx - cx[i]
        c, s = np.cos(th[i]), np.sin(th[i])
        u, v = (dx * c + dy * s) / ra[i], (-dx * s + dy * c) / rb[i]
        m = u * u + v * v <= 1.0
        sub = lab[y0:y1, x0:x1]
        if not overlap:
            m &= sub == 0
        sub[m] = i + 1
    return lab


def perturb_instances(
    true: np.ndarray,
    seed: int = 0,
    shift: int = 2,
    p_drop: float = 0.05,
    p_merge: float = 0.03,
    p_split: float = 0.03,
    n_false: int = 10,
    id_stride: int = 1,
) -> np.ndarray:
    """A plausible "prediction" of ``true``: shifted, with misses, merges, splits and FPs.

    ``id_stride > 1`` multiplies ids to make them non-contiguous.
    """
    rng = np.random.default_rng(seed)
    h, w = true.shape
    dy, dx = rng.integers(-shift, shift + 1, 2)
    pred = np.zeros_like(true, dtype=np.int64)
    ys = slice(max(dy, 0), h + min(dy, 0))
    xs = slice(max(dx, 0), w + min(dx, 0))
    yt = slice(max(-dy, 0), h + min(-dy, 0))
    xt = slice(max(-dx, 0), w + min(-dx, 0))
    pred[ys, xs] = true[yt, xt]
    ids = np.unique(pred)
    ids = ids[ids > 0]
    nid = int(true.max()) + 1
    if len(ids):
        drop = ids[rng.random(len(ids)) < p_drop]
        pred[np.isin(pred, drop)] = 0
        # merges: relabel a nucleus with the id of another one
        for a in ids[rng.random(len(ids)) < p_merge]:
            b = ids[rng.integers(len(ids))]
            pred[pred == a] = b
        # splits: the left half of a nucleus gets a new id
        for a in ids[rng.random(len(ids)) < p_split]:
            yy, xx = np.nonzero(pred == a)
            if len(xx) > 3:
                left = xx < np.median(xx)
                pred[yy[left], xx[left]] = nid
                nid += 1
    fp = random_instances((h, w), n_false, seed=seed + 1)
    add = (fp > 0) & (pred == 0)
    pred[add] = fp[add] + nid
    return (pred * id_stride).astype(np.int32)


def synthetic_store(
    store,
    train_sets: tuple[str, ...] = ("monuseg", "consep", "monuseg+consep"),
    test_sets: tuple[str, ...] = ("monuseg", "consep"),
    n_samples: int = 20,
    metrics: tuple[str, ...] = ("pq", "dq", "sq", "aji", "dice1", "f1"),
    classes: tuple[str, ...] = (),
    seed: int = 0,
    family: str = "synthetic",
) -> list[str]:
    """Fill a store with complete runs of made-up models (for UI tests and benchmarks).

    One run per training set x test set (ids end in the family); model ``m_<train>``;
    per-sample values drawn around a level that is highest on the model's own test set, with
    organs, centers and patients cycling through small vocabularies. Rows and run records go
    through the store's API, so what pages and queries see is exactly what real runs produce.
    Returns the run ids.
    """
    from cellbench.runs.store import frame

    rng = np.random.default_rng(seed)
    organs = ("breast", "kidney", "lung", "colon")
    ids = []
    for tr in train_sets:
        for te in test_sets:
            run_id = f"m_{tr.replace('+', '_')}_{te}_test_hovernet_{family}"
            level = 0.65 if te in tr.split("+") else 0.45
            level += 0.03 * (tr.count("+"))
            rows = []
            for s in range(n_samples):
                base = {
                    "run_id": run_id,
                    "model_id": f"m_{tr}",
                    "train_datasets": tr,
                    "test_dataset": te,
                    "split": "test",
                    "level": "sample",
                    "sample_id": f"{te}_{s:04d}",
                    "organ": organs[s % len(organs)],
                    "center": f"C{s % 5}",
                    "stain": "H&E",
                    "patient_id": f"{te}_p{s // 2}",
                    "slide_id": f"{te}_s{s // 2}",
                }
                for m in metrics:
                    v = float(np.clip(level + rng.normal(0, 0.08), 0, 1))
                    rows.append({**base, "class": "all", "metric": m, "value": v})
                    for c in classes:
                        rows.append(
                            {
                                **base,
                                "class": c,
                                "metric": m,
                                "value": float(np.clip(v + rng.normal(0, 0.05), 0, 1)),
                            }
                        )
            store.append(run_id, frame(rows))
            store.write_run(
                {
                    "run_id": run_id,
                    "status": "complete",
                    "model_id": f"m_{tr}",
                    "train_datasets": tr,
                    "test_dataset": te,
                    "split": "test",
                    "task": "instances",
                    "preset": "hovernet",
                    "n_samples": n_samples,
                    "n_done": n_samples,
                    "created": "2026-01-01T00:00:00+00:00",
                    "finished": "2026-01-01T00:01:00+00:00",
                    "parameters": {},
                    "family": family,
                    "code_version": "synthetic",
                }
            )
            ids.append(run_id)
    return ids
