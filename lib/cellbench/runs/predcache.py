"""Kept predictions of model runs, so that an error view or an analysis reads them back.

A run over a model stores per-sample figures in the metrics store; the prediction itself is
kept here, in ``$CELLBENCH_HOME/cache/predictions/<run id>/<hash of sample id>.npz``, while the
run is evaluated (and the first time a replay recomputes one). The run id already names the
model's weights (sha256), the dataset, the samples and the preset, so a cached prediction is
only ever read back for the run that made it.

The file is :func:`cellbench.data.predictions.pack`'s form: instance maps (``labels``) or
overlapping objects (``obj_*``), ``cls_ids`` / ``cls`` (absent for class-agnostic models),
``score_ids`` / ``scores``; points as ``xy`` (pixels, x then y), ``cls``, ``score``.

Error thumbnails drawn from them are kept beside them (``thumbs/<hash>-<side>.png``), so a
run's grid is drawn once.

It is a cache: a damaged or unreadable file reads as missing, a write that fails is skipped,
and ``CELLBENCH_KEEP_PREDICTIONS=0`` turns writing off (each file is about 0.1-0.3 MB per
1000² tile).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic
from cellbench.data.predictions import NPZ_ERRORS
from cellbench.data.predictions import pack as _pack
from cellbench.data.predictions import unpack as _unpack


def enabled() -> bool:
    """Whether predictions are kept (``CELLBENCH_KEEP_PREDICTIONS``, default on)."""
    return os.environ.get("CELLBENCH_KEEP_PREDICTIONS", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def run_dir(run_id: str) -> Path:
    return config.home() / "cache" / "predictions" / run_id


def _file(run_id: str, sample_id: str) -> Path:
    h = hashlib.sha256(sample_id.encode("utf-8")).hexdigest()[:24]
    return run_dir(run_id) / f"{h}.npz"


def save(run_id: str, sample_id: str, pred) -> bool:
    """Keep ``pred`` (``(labels, classes, scores)`` or :class:`Points`); False if not written."""
    if not enabled():
        return False
    buf = io.BytesIO()
    np.savez_compressed(buf, **_pack(pred))
    try:
        write_bytes_atomic(_file(run_id, sample_id), buf.getvalue())
    except OSError:
        return False  # a cache: a full or read-only workspace only costs a recomputation
    return True


def load(run_id: str, sample_id: str):
    """The kept prediction of ``sample_id`` in ``run_id``, or None (missing or unreadable)."""
    path = _file(run_id, sample_id)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return _unpack(z)
    except NPZ_ERRORS:
        return None


def has(run_id: str, sample_id: str) -> bool:
    return _file(run_id, sample_id).is_file()


def _thumb_file(run_id: str, sample_id: str, side: int) -> Path:
    h = hashlib.sha256(sample_id.encode("utf-8")).hexdigest()[:24]
    return run_dir(run_id) / "thumbs" / f"{h}-{int(side)}.png"


def save_thumb(run_id: str, sample_id: str, side: int, image: np.ndarray) -> None:
    """Keep the error thumbnail (RGB) of a sample drawn from its kept prediction, so that a
    later grid of the run reads it instead of drawing it; a failed write is skipped."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, "PNG")
    with contextlib.suppress(OSError):  # a cache: a full or read-only workspace redraws
        write_bytes_atomic(_thumb_file(run_id, sample_id, side), buf.getvalue())


def load_thumb(run_id: str, sample_id: str, side: int) -> np.ndarray | None:
    """A kept error thumbnail, or None (missing or unreadable)."""
    from PIL import Image, UnidentifiedImageError

    path = _thumb_file(run_id, sample_id, side)
    if not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def drop(run_id: str) -> None:
    """Forget every kept prediction (and error thumbnail) of a run."""
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
