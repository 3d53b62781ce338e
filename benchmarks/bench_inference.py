"""End-to-end nucleus segmentation throughput on 1000x1000 H&E tiles (issues 4, 17), one run.

Run by hand: ``python benchmarks/bench_inference.py [--device cuda] [--tiles N] [--workers W]
[--batch B] [--compile]`` (target on an H100: >= 200 tiles/s end to end with the default
network, post-processing included).

Measures, per 1000x1000 tile at the model's 0.25 um/px:

- network forward of ``hovernet_lite`` (default size, 7.8 M parameters; and ``--base 16``)
  through the tiled engine (256 px tiles, 32 px halo, blending), bf16 autocast and
  channels-last on CUDA, ``torch.compile`` with ``--compile``; split into the backend call
  (host-to-device copy, network, device-to-host copy) and the rest (normalisation, cutting
  tiles, blending), so it shows where the time goes;
- post-processing (HoVer-Net marker-controlled watershed + types) on *realistic* maps: ideal
  network outputs built from real MoNuSeg test annotations (random weights would leave nothing
  to post-process and flatter the figure); synthetic nuclei when the data is absent;
- end to end with ``--workers`` post-processing processes overlapping the network
  (``Predictor.predict_many``), in tiles per second;

and prints the share of each stage and the ratios between them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from cellbench.models.backends import TorchBackend
from cellbench.models.card import parse_card
from cellbench.models.inference import Predictor
from cellbench.models.nets import build, n_parameters
from cellbench.models.postprocess import hv_targets, postprocess
from cellbench.runs.synthetic import random_instances


def real_tiles(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, instances) of MoNuSeg test tiles (1000x1000), or synthetic ones."""
    try:
        from cellbench.data.catalog import load_catalog
        from cellbench.data.samples import iter_samples

        out = []
        for _, s in iter_samples(load_catalog(), "monuseg", "test"):
            out.append((s.image, s.instances))
            if len(out) == n:
                return out
    except Exception as e:  # noqa: BLE001 - benchmark falls back to synthetic tiles
        print(f"(MoNuSeg not available: {e}; using synthetic tiles)")
    rng = np.random.default_rng(0)
    return [
        (
            rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8),
            random_instances((1000, 1000), 600, seed=i, overlap=True),
        )
        for i in range(n)
    ]


def card(base: int, n_types: int):
    return parse_card(
        {
            "id": "bench",
            "name": "bench",
            "kind": "cellbench",
            "architecture": "hovernet_lite",
            "kwargs": {"base": base, "n_types": n_types},
            "weights": {"file": "none.pt", "sha256": "0" * 64},
            "input": {"channels": "rgb", "mpp": 0.25, "tile": 256, "halo": 32, "multiple_of": 16},
            "output": {"kind": "hovernet", "n_types": n_types},
            "classes": [
                {"id": i + 1, "name": f"c{i}", "nodes": ["nucleus"]} for i in range(n_types)
            ],
            "postprocess": {"method": "hovernet"},
        }
    )


def ideal_maps(inst: np.ndarray, n_types: int) -> np.ndarray:
    h, v = hv_targets(inst)
    types = np.zeros((n_types, *inst.shape), np.float32)
    types[inst % n_types, np.arange(inst.shape[0])[:, None], np.arange(inst.shape[1])] = 1
    return np.concatenate([(inst > 0)[None].astype(np.float32), h[None], v[None], types])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiles", type=int, default=6)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--compile", action="store_true", help="torch.compile the network")
    args = ap.parse_args()
    tiles = real_tiles(args.tiles)
    print(
        f"device {args.device}, {len(tiles)} tiles of {tiles[0][0].shape}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    )
    n_types = 4
    pp_ms = []
    for _, inst in tiles:
        maps = ideal_maps(inst, n_types)
        t0 = time.perf_counter()
        res = postprocess(maps, "hovernet", card(32, n_types).postprocess)
        pp_ms.append((time.perf_counter() - t0) * 1e3)
    pp = statistics.median(pp_ms)
    print(
        f"post-processing (HoVer-Net watershed + types, {res.labels.max()} nuclei): "
        f"{pp:.0f} ms/tile"
    )
    for base in (32, 16):
        c = card(base, n_types)
        net = build("hovernet_lite", base=base, n_types=n_types)
        backend = TorchBackend(net, args.device, compile=args.compile)
        pred = Predictor(c, _Timed(backend, args.device), batch_size=args.batch)
        for _ in range(3 if args.compile else 1):  # warm-up (and compilation)
            pred.output_maps(tiles[0][0], 0.25)
        ts, net_ts = [], []
        for img, _ in tiles:
            pred.backend.seconds = 0.0
            t0 = time.perf_counter()
            pred.output_maps(img, 0.25)
            ts.append(time.perf_counter() - t0)
            net_ts.append(pred.backend.seconds)
        fwd = statistics.median(ts) * 1e3
        call = statistics.median(net_ts) * 1e3
        serial = fwd + pp
        print(
            f"  base {base}: per tile {call:.1f} ms in the backend call (copy in, network, "
            f"copy out) + {fwd - call:.1f} ms preparing and blending tiles = {fwd:.1f} ms; "
            f"post-processing {pp:.0f} ms"
        )
        # end to end with overlapping post-processing (ideal maps stand in for the network's
        # output so that the watershed does real work)
        pred.output_maps = _ideal_output(pred.output_maps, tiles, n_types)
        imgs = [img for img, _ in tiles]
        t0 = time.perf_counter()
        list(pred.predict_many(imgs, [0.25] * len(imgs), workers=args.workers))
        e2e = (time.perf_counter() - t0) / len(imgs) * 1e3
        print(
            f"hovernet_lite base {base} ({n_parameters(net) / 1e6:.1f} M params): "
            f"forward {fwd:.0f} ms/tile; serial forward+post {serial:.0f} ms "
            f"({1e3 / serial:.2f} tiles/s, post-processing {pp / serial:.0%} of it); "
            f"with {args.workers} post-processing workers {e2e:.0f} ms/tile "
            f"({1e3 / e2e:.2f} tiles/s, {serial / e2e:.2f}x serial)"
        )


class _Timed:
    """A backend that adds up the seconds spent in its calls (synchronised on CUDA)."""

    def __init__(self, backend, device: str):
        self.backend = backend
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def __call__(self, batch):
        self.sync()
        t0 = time.perf_counter()
        out = self.backend(batch)
        self.sync()
        self.seconds += time.perf_counter() - t0
        return out


def _ideal_output(forward, tiles, n_types):
    """Run the real forward (its cost counts) but return the ideal maps of the tile."""
    by_id = {id(img): inst for img, inst in tiles}

    def run(img, mpp=None):
        forward(img, mpp)
        return ideal_maps(by_id[id(img)], n_types)

    return run


if __name__ == "__main__":
    main()
