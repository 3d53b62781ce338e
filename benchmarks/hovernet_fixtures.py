"""HoVer-Net's own post-processing on real network outputs: the test fixtures, and the
comparison with cellbench's ``hovernet`` and ``hovernet_gauss`` methods (issue 30 item 4).

Run by hand. Bundled models' activated outputs (foreground probability, h, v on the image
grid, exactly what cellbench post-processes) on real tiles are post-processed by
vqdang/hover_net ``models/hovernet/post_proc.py: __proc_np_hv`` (its own file, executed in
the separate environment of ``setup_official.sh`` plus opencv-python-headless and
scikit-image) and by cellbench; the inputs and HoVer-Net's instance maps are written to
``tests/fixtures/hovernet_post.npz`` (``--write``), which ``tests/test_postprocess_fidelity.py``
checks cellbench against. Timings: medians of alternated calls, same process for cellbench,
HoVer-Net's in its environment.

Usage::

    python benchmarks/hovernet_fixtures.py --hover-net DIR --ref-python PY [--write]

``DIR``: a checkout of vqdang/hover_net (``misc/utils.py``, ``models/hovernet/post_proc.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hovernet_post.npz"
#: (model, dataset, split, sample index, crop): small real tiles with touching nuclei
TILES = [
    ("cb_consep", "consep", "test", 0, None),
    ("cb_consep", "consep", "test", 40, None),
    ("cb_monuseg", "monuseg", "test", 0, (300, 300, 320)),
]
#: compared and timed, not stored: whole 1000 x 1000 MoNuSeg tiles
BIG = [("cb_monuseg", "monuseg", "test", k, None) for k in (0, 1, 2)]

DRIVER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
ns = {}
src = open(sys.argv[1] + "/models/hovernet/post_proc.py").read()
exec(compile(src, "post_proc.py", "exec"), ns)
d = np.load(sys.argv[2])
out, times = {}, []
for k in range(int(d["n"])):
    m = d[f"maps{k}"]
    pred = np.stack([m[0], m[1], m[2]], axis=-1)
    out[f"labels{k}"] = ns["__proc_np_hv"](pred).astype(np.int32)
    ts, tp = [], []
    for _ in range(int(sys.argv[4])):
        t0 = time.perf_counter()
        ns["__proc_np_hv"](pred)
        ts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ns["process"](pred, nr_types=None, return_centroids=True)  # + per-nucleus info
        tp.append(time.perf_counter() - t0)
    times.append([float(np.median(ts)), float(np.median(tp))])
np.savez_compressed(sys.argv[3], **out)
print(json.dumps(times))
"""


def network_maps(tiles) -> list[tuple[str, np.ndarray]]:
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import iter_samples
    from cellbench.models.registry import load_predictor

    cat = load_catalog()
    out = []
    for model, ds, split, index, crop in tiles:
        net = load_predictor(model)
        rec, s = next(x for k, x in enumerate(iter_samples(cat, ds, split)) if k == index)
        img = s.image
        if crop is not None:
            r, c, n = crop
            img = img[r : r + n, c : c + n]
        maps = net.maps_for_postprocess(img, s.meta.get("mpp"))[:3].astype(np.float32)
        out.append((f"{model}:{rec.sample_id}", maps))
    return out


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical instance maps up to the ids' values (HoVer-Net's may skip numbers)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def main() -> None:
    from bench_metrics import median_ms  # benchmarks/ is on the path when run as a script

    from cellbench.models.card import PostProcess
    from cellbench.models.postprocess import hovernet_instances, hovernet_official, postprocess

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hover-net", type=Path, required=True)
    ap.add_argument("--ref-python", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", action="store_true", help=f"write {FIXTURE}")
    ap.add_argument("--big", action="store_true", help="also whole 1000^2 MoNuSeg tiles")
    a = ap.parse_args()
    tiles = network_maps(TILES + (BIG if a.big else []))
    with tempfile.TemporaryDirectory() as d:
        inp, outp = Path(d) / "in.npz", Path(d) / "out.npz"
        np.savez(inp, n=len(tiles), **{f"maps{k}": m for k, (_, m) in enumerate(tiles)})
        (Path(d) / "driver.py").write_text(DRIVER)
        res = subprocess.run(
            [
                a.ref_python,
                str(Path(d) / "driver.py"),
                str(a.hover_net),
                str(inp),
                str(outp),
                str(a.repeat),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        ref_times = json.loads(res.stdout.strip().splitlines()[-1])
        with np.load(outp) as z:
            ref = [z[f"labels{k}"] for k in range(len(tiles))]
    print(
        f"{'tile':<36}{'size':>9}{'nuclei HoVer-Net':>17}{'hovernet':>9}{'same':>5}{'gauss':>6}"
        f"  ms: __proc_np_hv / hovernet   process() / postprocess()"
    )
    params = PostProcess(method="hovernet")
    for (name, m), r, (rt, rp) in zip(tiles, ref, ref_times, strict=True):
        ours = hovernet_official(m[0], m[1], m[2])
        gauss = hovernet_instances(m[0], m[1], m[2])
        ms = median_ms(lambda m=m: hovernet_official(m[0], m[1], m[2]), a.repeat)
        mp = median_ms(lambda m=m: postprocess(m, "hovernet", params), a.repeat)
        n_ref = len(np.unique(r)) - 1
        print(
            f"{name:<36}{m.shape[1]:>5}x{m.shape[2]:<4}{n_ref:>16}{len(np.unique(ours)) - 1:>9}"
            f"{'yes' if same_partition(ours, r) else 'NO':>5}{len(np.unique(gauss)) - 1:>6}"
            f"  {rt * 1e3:7.1f} / {ms:6.1f} ({rt * 1e3 / ms:.2f}x)"
            f"   {rp * 1e3:7.1f} / {mp:6.1f} ({rp * 1e3 / mp:.2f}x)"
        )
    tiles, ref = tiles[: len(TILES)], ref[: len(TILES)]
    if a.write:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            FIXTURE,
            names=np.array([n for n, _ in tiles]),
            **{f"maps{k}": m for k, (_, m) in enumerate(tiles)},
            **{f"labels{k}": r for k, r in enumerate(ref)},
        )
        print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
