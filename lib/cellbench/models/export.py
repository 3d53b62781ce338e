"""cellbench's own networks on the CPU through ONNX Runtime (issue 30 item 3).

Measured on this 2-core machine, ``hovernet_lite`` (``cb_monuseg``), 8 tiles of 256²:
torch eager 0.45 s, torch with BatchNorm folded and channels-last 0.19-0.23 s, ONNX Runtime
with full graph optimisation 0.136 s (3.3x eager; one 1024² tile 0.27 s against 1.09 s); the
outputs differ from torch's by at most 4e-6 (logits). ONNX Runtime is therefore the default
CPU backend of ``kind: cellbench`` cards (card field ``cpu_backend``: ``auto`` / ``onnx`` /
``torch``).

The export is made once per weights (``torch.onnx.export``, dynamic batch, height and width)
into ``$CELLBENCH_HOME/cache/onnx/<weights sha256>-<architecture hash>.onnx`` (written
atomically) and checked against torch on a random input before it is used: a difference
above :data:`TOLERANCE` (or an export that fails, e.g. without the ``onnx`` package) keeps
torch, and says why. The check's figure is kept beside the file (``.json``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic

#: Largest absolute difference of any output (logits, h/v) accepted against torch.
TOLERANCE = 1e-4


def export_path(card) -> Path:
    arch = json.dumps({"a": card.architecture, "k": card.kwargs}, sort_keys=True)
    key = hashlib.sha256(arch.encode()).hexdigest()[:12]
    return config.home() / "cache" / "onnx" / f"{card.weights.sha256}-{key}.onnx"


def onnx_export(card, module) -> tuple[Path | None, str]:
    """``(path of the checked ONNX export, note)``; ``(None, why)`` when torch must stay."""
    path = export_path(card)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("max_abs_diff", 1.0) <= TOLERANCE:
            return path, f"onnx export (max |diff| {info['max_abs_diff']:.1e} vs torch)"
        return None, f"onnx export differs from torch by {info.get('max_abs_diff')}"
    try:
        data = _export_bytes(module, int(card.kwargs.get("in_channels", 3)))
    except Exception as e:  # noqa: BLE001 - any export failure keeps torch
        return None, f"onnx export failed ({type(e).__name__}: {e}); torch used"
    diff = _check(module, data, int(card.kwargs.get("in_channels", 3)), card)
    write_bytes_atomic(path, data)
    write_bytes_atomic(meta, json.dumps({"model": card.id, "max_abs_diff": diff}).encode())
    if diff > TOLERANCE:
        return None, f"onnx export differs from torch by {diff:.1e}; torch used"
    return path, f"onnx export (max |diff| {diff:.1e} vs torch)"


def _export_bytes(module, channels: int) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    x = torch.zeros(1, channels, 64, 64)
    axes = {0: "n", 2: "h", 3: "w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            x,
            buf,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": axes},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def session(data_or_path: Any, threads: int | None = None):
    """An ONNX Runtime CPU session with full graph optimisation (BatchNorm folded into the
    convolutions, activations fused)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    src = str(data_or_path) if isinstance(data_or_path, Path) else data_or_path
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _check(module, data: bytes, channels: int, card) -> float:
    """Largest absolute difference between torch and the export on a random 2 x 96² input
    (sides a multiple of the network's 2^depth)."""
    import torch

    side = 16 * max(1, 96 // 16)
    x = np.random.default_rng(0).standard_normal((2, channels, side, side)).astype(np.float32)
    with torch.inference_mode():
        ref = module.eval()(torch.from_numpy(x)).numpy()
    got = session(data).run(None, {"x": x})[0]
    return float(np.abs(got - ref).max())
