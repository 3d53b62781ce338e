"""Overlap of two instance maps in one pass: areas and intersections of overlapping pairs.

This is the only code in the metrics engine that touches pixels. Everything else (matching,
PQ, AJI, Dice) works on the few thousand overlapping pairs it returns, never on full-size
masks or dense IoU matrices.

Algorithm: the pixels where either map is foreground are gathered once; a joint histogram of
``(true id, pred id)`` over them (one ``np.bincount``) gives every pairwise intersection, and
its row/column sums give the areas. Instance ids need not be contiguous; when the id range
makes the histogram too large they are compacted first (on the gathered pixels only).

Overlapping instances (:class:`~cellbench.data.sample.Objects`, e.g. whole cells in cytology)
cannot be put in one map: :func:`object_overlap` intersects the objects themselves (pairs whose
bounding boxes meet, counted on the crops), and records the foreground counts separately, since
summed object areas then exceed the foreground.

Units: areas and intersections are pixel counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.sample import Objects
from cellbench.metrics import _kernels

#: Largest dense joint histogram (bins) built directly; beyond it ids are compacted.
MAX_BINS = 1 << 24


def check_label_map(arr: np.ndarray, name: str | Path = "labels") -> np.ndarray:
    """Validate one instance map and return it as a 2-D integer array (no copy when possible).

    Parameters
    ----------
    arr
        ``(H, W)`` integer instance map, 0 = background. A trailing channel axis of size 1 is
        dropped.
    name
        What to call the input in errors: usually its file path.

    Raises
    ------
    DataError
        For float (including NaN) or boolean labels, more than two dimensions, or negative ids
        (checked in :func:`compute_overlap`, on foreground pixels only, to avoid a full pass).
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(name, f"instance map must be 2-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        what = "NaN" if np.isnan(arr).any() else "float values"
        raise DataError(
            name, f"instance map has {what} (dtype {arr.dtype}); integer instance ids expected"
        )
    if arr.dtype.kind == "b":
        raise DataError(
            name,
            "instance map is boolean (a binary mask); label its connected components first "
            "(e.g. skimage.measure.label) to get instance ids",
        )
    if arr.dtype.kind not in "iu":
        raise DataError(name, f"instance map has unsupported dtype {arr.dtype}")
    return arr


def _check_same_shape(ts, ps, true_name, pred_name) -> None:
    if tuple(ts[:2]) != tuple(ps[:2]):
        raise DataError(
            pred_name,
            f"shape {ps[1]}x{ps[0]} differs from the ground truth's {ts[1]}x{ts[0]} ({true_name})",
        )


@dataclass
class Overlap:
    """Areas of the instances of two maps and the intersections of overlapping pairs.

    Instances are indexed ``0..n-1`` in increasing order of their ids (the order HoVer-Net's
    ``remap_label`` keeps), so ties are broken the same way as the reference code.

    Attributes
    ----------
    true_ids, pred_ids
        ``(nT,)``, ``(nP,)`` original instance ids.
    true_area, pred_area
        ``(nT,)``, ``(nP,)`` areas in pixels.
    ti, pj
        ``(E,)`` indices of the overlapping pairs, sorted by ``(ti, pj)``.
    inter
        ``(E,)`` intersections in pixels.
    shape
        ``(H, W)`` of the maps.
    fg
        ``(true foreground, pred foreground, their intersection)`` in pixels where objects may
        overlap (then they differ from the summed areas); None for label maps.
    centroids
        ``((nT, 2), (nP, 2))`` centroids ``(x, y)`` of the true and predicted instances in
        pixels (pixel centres at integers), when computed with the overlap
        (``compute_overlap(want_centroids=True)``); else None.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray
    ti: np.ndarray
    pj: np.ndarray
    inter: np.ndarray
    shape: tuple[int, int]
    fg: tuple[int, int, int] | None = None
    centroids: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def foreground(self) -> tuple[int, int, int]:
        """``(true, pred, both)`` foreground pixel counts."""
        if self.fg is not None:
            return self.fg
        return int(self.true_area.sum()), int(self.pred_area.sum()), int(self.inter.sum())

    @property
    def n_true(self) -> int:
        return len(self.true_ids)

    @property
    def n_pred(self) -> int:
        return len(self.pred_ids)

    @cached_property
    def union(self) -> np.ndarray:
        """``(E,)`` union of each overlapping pair in pixels."""
        return self.true_area[self.ti] + self.pred_area[self.pj] - self.inter

    @cached_property
    def iou(self) -> np.ndarray:
        """``(E,)`` IoU of each pair, ``inter / union`` in float64 (no epsilon)."""
        return self.inter / self.union

    @cached_property
    def iou32(self) -> np.ndarray:
        """:attr:`iou` rounded to float32, as StarDist computes it."""
        return self.iou.astype(np.float32)

    def iou_of(self, preset) -> np.ndarray:
        """The IoU a preset decides with: float32 where its reference computes it so."""
        return self.iou32 if preset.iou_float32 else self.iou


def _compact(values: np.ndarray, vmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to ``1..n`` keeping order; returns ``(compact values, ids)`` (0 stays 0).

    A lookup table over the id range when it is not much larger than the pixels (one bincount
    and one gather), else a sort of the pixels' ids."""
    if vmax <= max(4 * len(values), 1 << 16) and vmax <= MAX_BINS:
        present = np.bincount(values, minlength=vmax + 1) > 0
        present[0] = True
        lut = np.cumsum(present) - 1
        ids = np.flatnonzero(present)
        return lut[values], ids
    ids, inv = np.unique(values, return_inverse=True)
    if ids[0] != 0:
        ids = np.concatenate([[0], ids])
        inv = inv + 1
    return inv, ids


#: Pixels per block when gathering foreground: small enough that both blocks stay in L2.
_BLOCK = 1 << 15


def _gather_foreground(tr: np.ndarray, pr: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flat indices and values of the pixels where either map is non-zero.

    Works block by block so each block of both maps is read from memory once (the mask and
    the gather then hit the cache); ``np.take`` is several times faster than fancy indexing.
    """
    n = len(tr)
    parts_i, parts_t, parts_p = [], [], []
    for s in range(0, n, _BLOCK):
        a = tr[s : s + _BLOCK]
        b = pr[s : s + _BLOCK]
        i = np.flatnonzero(np.logical_or(a, b))
        parts_t.append(np.take(a, i))
        parts_p.append(np.take(b, i))
        i += s
        parts_i.append(i)
    return np.concatenate(parts_i), np.concatenate(parts_t), np.concatenate(parts_p)


def compute_overlap(
    true: np.ndarray,
    pred: np.ndarray,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
    want_centroids: bool = False,
) -> Overlap:
    """Compute the :class:`Overlap` of two instance maps.

    Parameters
    ----------
    true, pred
        ``(H, W)`` integer instance maps (0 = background), same shape.
    true_name, pred_name
        Names (file paths) used in error messages.
    want_centroids
        Also compute every instance's centroid (:attr:`Overlap.centroids`).

    Raises
    ------
    DataError
        Shapes differ, float/bool/negative labels.
    """
    t = check_label_map(true, true_name)
    p = check_label_map(pred, pred_name)
    _check_same_shape(t.shape, p.shape, true_name, pred_name)
    tr = t.ravel()
    pr = p.ravel()
    shape = (int(t.shape[0]), int(t.shape[1]))
    if len(tr) and _kernels.use_compiled(len(tr)):
        width = shape[1] if want_centroids else 0
        got = _kernels.joint_counts(tr, pr, min(MAX_BINS, max(4 * len(tr), 1 << 16)), width)
        if isinstance(got, str):
            raise DataError(
                true_name if got == "true" else pred_name, "instance map has negative ids"
            )
        if got is not None:
            *fields, tcent, pcent = got
            cent = (tcent, pcent) if want_centroids else None
            return Overlap(*fields, shape, centroids=cent)
    idx, tf, pf = _gather_foreground(tr, pr)
    if len(idx):
        if t.dtype.kind == "i" and tf.min() < 0:
            raise DataError(true_name, "instance map has negative ids")
        if p.dtype.kind == "i" and pf.min() < 0:
            raise DataError(pred_name, "instance map has negative ids")
        tmax, pmax = int(tf.max()), int(pf.max())
    else:
        tmax = pmax = 0
    tf = tf.astype(np.intp, copy=False)
    pf = pf.astype(np.intp, copy=False)
    # the joint histogram is sized by the id range: when that range is large for the pixels
    # at hand (sparse or offset ids), compact the ids first so the cost follows the pixels
    dense_limit = min(MAX_BINS, 4 * len(idx) + (1 << 16))
    if (tmax + 1) * (pmax + 1) > dense_limit:
        tf, tids = _compact(tf, tmax)
        pf, pids = _compact(pf, pmax)
        tmax, pmax = len(tids) - 1, len(pids) - 1
    else:
        tids, pids = np.arange(tmax + 1), np.arange(pmax + 1)
    k = pmax + 1
    key = tf * k
    key += pf
    if (tmax + 1) * k <= dense_limit:
        hist = np.bincount(key, minlength=(tmax + 1) * k)
        nz = np.flatnonzero(hist != 0)
        cnt = hist[nz]
    else:  # very many instances: sort-based, memory stays O(pixels)
        nz, cnt = np.unique(key, return_counts=True)
    rows, cols = np.divmod(nz, k)
    t_area_all = np.bincount(rows, weights=cnt, minlength=tmax + 1)
    p_area_all = np.bincount(cols, weights=cnt, minlength=pmax + 1)
    t_present = t_area_all > 0
    p_present = p_area_all > 0
    t_present[0] = p_present[0] = False
    tlut = np.cumsum(t_present) - 1
    plut = np.cumsum(p_present) - 1
    both = (rows > 0) & (cols > 0)
    ov = Overlap(
        true_ids=tids[t_present],
        pred_ids=pids[p_present],
        true_area=t_area_all[t_present].astype(np.int64),
        pred_area=p_area_all[p_present].astype(np.int64),
        ti=tlut[rows[both]],
        pj=plut[cols[both]],
        inter=cnt[both].astype(np.int64),
        shape=shape,
    )
    if want_centroids:
        rows_cols = np.divmod(idx, shape[1])  # once for both maps
        ov.centroids = (
            centroids(rows_cols, np.where(tf > 0, tlut[tf], -1), ov.n_true),
            centroids(rows_cols, np.where(pf > 0, plut[pf], -1), ov.n_pred),
        )
    return ov


def centroids(rows_cols: tuple[np.ndarray, np.ndarray], comp: np.ndarray, n: int) -> np.ndarray:
    """``(n, 2)`` centroids ``(x, y)`` in pixels of instances given their pixels.

    ``rows_cols`` are the rows and columns of the gathered pixels (``np.divmod`` of their flat
    indices by the width), ``comp`` the compact instance index of each (``-1`` = not this
    map's foreground). Pixel ``(row r, column c)`` has coordinates ``x = c, y = r`` (pixel
    centres at integers, as in HoVer-Net and scikit-image).
    """
    fg = comp >= 0
    c = comp[fg]
    r, col = rows_cols[0][fg], rows_cols[1][fg]
    area = np.bincount(c, minlength=n).astype(np.float64)
    area[area == 0] = np.nan
    x = np.bincount(c, weights=col, minlength=n) / area
    y = np.bincount(c, weights=r, minlength=n) / area
    return np.stack([x, y], axis=1)


def as_objects(x: np.ndarray | Objects, name: str | Path = "labels") -> Objects:
    """``x`` as :class:`Objects` (a label map is validated and split into its instances)."""
    if isinstance(x, Objects):
        return x
    return Objects.from_label_map(check_label_map(x, name))


#: Ground-truth rows of boxes tested against all predicted boxes at once.
_BOX_CHUNK = 512


def object_overlap(
    true: np.ndarray | Objects,
    pred: np.ndarray | Objects,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
) -> Overlap:
    """The :class:`Overlap` of two sets of possibly overlapping objects (either may be a label
    map). Pairs are the objects whose bounding boxes meet and whose masks share a pixel.

    Raises
    ------
    DataError
        The image shapes differ, or a label map is invalid.
    """
    t = as_objects(true, true_name)
    p = as_objects(pred, pred_name)
    _check_same_shape(t.shape, p.shape, true_name, pred_name)
    tb, pb = t.boxes, p.boxes
    ti_l, pj_l, inter_l = [], [], []
    for s in range(0, len(tb), _BOX_CHUNK):
        b = tb[s : s + _BOX_CHUNK, None, :]
        r0 = np.maximum(b[..., 0], pb[None, :, 0])
        c0 = np.maximum(b[..., 1], pb[None, :, 1])
        r1 = np.minimum(b[..., 2], pb[None, :, 2])
        c1 = np.minimum(b[..., 3], pb[None, :, 3])
        ii, jj = np.nonzero((r0 < r1) & (c0 < c1))
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            gi = s + i
            y0, x0, y1, x1 = r0[i, j], c0[i, j], r1[i, j], c1[i, j]
            ta, pa = tb[gi], pb[j]
            a = t.masks[gi][y0 - ta[0] : y1 - ta[0], x0 - ta[1] : x1 - ta[1]]
            q = p.masks[j][y0 - pa[0] : y1 - pa[0], x0 - pa[1] : x1 - pa[1]]
            n = int(np.count_nonzero(a & q))
            if n:
                ti_l.append(gi)
                pj_l.append(j)
                inter_l.append(n)
    ut, up = t.union(), p.union()
    fg = (int(ut.sum()), int(up.sum()), int(np.count_nonzero(ut & up)))
    return Overlap(
        true_ids=t.ids,
        pred_ids=p.ids,
        true_area=t.area,
        pred_area=p.area,
        ti=np.asarray(ti_l, np.intp),
        pj=np.asarray(pj_l, np.intp),
        inter=np.asarray(inter_l, np.int64),
        shape=t.shape,
        fg=fg,
    )


def overlap_of(
    true: np.ndarray | Objects,
    pred: np.ndarray | Objects,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
) -> Overlap:
    """:func:`compute_overlap` of two maps, or :func:`object_overlap` when either side holds
    overlapping objects."""
    if isinstance(true, Objects) or isinstance(pred, Objects):
        return object_overlap(true, pred, true_name, pred_name)
    return compute_overlap(true, pred, true_name, pred_name)
