"""From network outputs to nucleus instances (numpy / scipy / scikit-image; OpenCV for
HoVer-Net's own operators).

Units are model pixels. Every step is vectorised over the image; nothing loops over nuclei.

Methods
-------
``connected_components``
    Foreground probability > ``threshold``, 8-connected components, objects smaller than
    ``min_size`` pixels removed.
``distance_watershed``
    For foreground-only models that must split touching nuclei: the Euclidean distance to the
    background, smoothed with a Gaussian of ``sigma`` px; its local maxima at least
    ``min_distance`` px apart (one or more per component) seed a watershed of the negated
    distance inside the foreground.
``hovernet``
    HoVer-Net's own post-processing, step for step as vqdang/hover_net
    ``models/hovernet/post_proc.py: __proc_np_hv`` (Graham et al. 2019), with the same OpenCV
    operators, so that on identical network outputs the instance maps are identical:
    foreground ``prob >= threshold``, 4-connected components smaller than ``min_size`` removed;
    h and v min-max normalised to [0, 1] (float32), differentiated by a 21-tap Sobel kernel
    (float64), each min-max normalised again and inverted; their maximum outside the foreground
    set to 0 is the boundary energy; markers = foreground pixels with energy <
    ``marker_threshold``, holes filled, opened with a 5 x 5 ellipse, 4-connected, small ones
    removed; the watershed of ``-GaussianBlur3x3((1 - energy) * foreground)`` grows them
    inside the foreground (4-connected flooding, :func:`split_watershed`). Ids are then made
    contiguous (HoVer-Net's may skip numbers).
``hovernet_gauss``
    cellbench's earlier variant (the one the bundled checkpoints' reference runs used): the
    same scheme with 8-connected components, ``prob > threshold``, a Gaussian derivative
    (sigma 2.2 px, the spread of a 21-tap binomial) instead of the Sobel kernel, a 5 x 5 disk
    and a 0.8 px Gaussian for the distance. It differs from ``hovernet`` (measured on real
    network outputs: more splits; see ``benchmarks/bench_inference.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import disk
from skimage.segmentation import watershed

_EIGHT = np.ones((3, 3), dtype=bool)
#: Gaussian derivative scale matching HoVer-Net's 21-tap Sobel kernel (binomial variance 20/4).
SOBEL21_SIGMA = float(np.sqrt(20 / 4))


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0 (ids are kept)."""
    if min_size <= 1 or labels.max() == 0:
        return labels
    area = np.bincount(labels.ravel())
    small = area < min_size
    small[0] = False
    if small.any():
        labels = labels.copy()
        labels[small[labels]] = 0
    return labels


def relabel(labels: np.ndarray) -> np.ndarray:
    """Contiguous ids 1..n in increasing order of the old ids, int32 (0 stays 0)."""
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    lut = np.cumsum(present, dtype=np.int32)
    lut[~present] = 0
    return lut[labels]


def connected_components(prob: np.ndarray, threshold: float = 0.5, min_size: int = 10):
    """Instances as 8-connected components of ``prob > threshold`` (int32 label map)."""
    labels, _ = ndi.label(prob > threshold, structure=_EIGHT)
    return relabel(remove_small(labels, min_size))


def distance_watershed(
    prob: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 10,
    sigma: float = 1.0,
    min_distance: int = 3,
) -> np.ndarray:
    """Split touching nuclei of a foreground map by a watershed of the distance transform."""
    mask = prob > threshold
    comps, n = ndi.label(mask, structure=_EIGHT)
    comps = remove_small(comps, min_size)
    mask = comps > 0
    if n == 0 or not mask.any():
        return np.zeros(prob.shape, dtype=np.int32)
    dist = ndi.gaussian_filter(ndi.distance_transform_edt(mask), sigma)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=comps, exclude_border=False)
    markers = np.zeros(prob.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # components without a peak (flat plateaus) keep one marker: their own label
    missing = np.setdiff1d(np.unique(comps[mask]), np.unique(comps[tuple(peaks.T)]))
    if len(missing):
        sel = np.isin(comps, missing)
        markers[sel] = comps[sel] + len(peaks)
    labels = watershed(-dist, markers, mask=mask)
    return relabel(remove_small(labels, min_size))


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def hovernet_instances(
    prob: np.ndarray,
    h: np.ndarray,
    v: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 10,
    marker_threshold: float = 0.4,
    sigma: float = SOBEL21_SIGMA,
) -> np.ndarray:
    """``hovernet_gauss``: cellbench's Gaussian-derivative variant of HoVer-Net's watershed
    (see the module docstring); int32 label map."""
    comps, _ = ndi.label(prob > threshold, structure=_EIGHT)
    blb = remove_small(comps, min_size) > 0
    if not blb.any():
        return np.zeros(prob.shape, dtype=np.int32)
    h = _minmax(h.astype(np.float32))
    v = _minmax(v.astype(np.float32))
    dh = 1.0 - _minmax(ndi.gaussian_filter(h, sigma, order=(0, 1)))
    dv = 1.0 - _minmax(ndi.gaussian_filter(v, sigma, order=(1, 0)))
    energy = np.maximum(dh, dv)
    energy[~blb] = 0.0
    dist = -ndi.gaussian_filter((1.0 - energy) * blb, 0.8)
    marker = blb & (energy < marker_threshold)
    marker = ndi.binary_fill_holes(marker)
    marker = ndi.binary_opening(marker, structure=disk(2))
    markers, _ = ndi.label(marker, structure=_EIGHT)
    markers = remove_small(markers, min_size)
    labels = split_watershed(dist, markers, blb)
    return relabel(labels)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (its default 4-connected background) by one
    labelling: background components that do not touch the border are holes. Identical,
    about 4x faster on nucleus maps."""
    bg, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    border = np.zeros(n + 1, bool)
    for edge in (bg[0], bg[-1], bg[:, 0], bg[:, -1]):
        border[edge] = True
    border[0] = True  # the mask itself
    return ~border[bg] | mask


def hovernet_official(
    prob: np.ndarray,
    h: np.ndarray,
    v: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 10,
    marker_threshold: float = 0.4,
) -> np.ndarray:
    """HoVer-Net's ``__proc_np_hv`` (see the module docstring): the same operators in the same
    order and dtypes; int32 label map with contiguous ids."""
    import cv2

    blb = np.asarray(prob, np.float32) >= threshold
    lab, _ = ndi.label(blb)  # scipy's default structure: 4-connected, as HoVer-Net's
    lab = remove_small(lab, min_size)  # its components are also the flood's (4-connected)
    blb = (lab > 0).astype(np.int32)
    if not blb.any():
        return np.zeros(blb.shape, dtype=np.int32)

    def norm(a: np.ndarray) -> np.ndarray:
        return cv2.normalize(a, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F)

    h_dir = norm(np.asarray(h, np.float32))
    v_dir = norm(np.asarray(v, np.float32))
    sobelh = 1 - norm(cv2.Sobel(h_dir, cv2.CV_64F, 1, 0, ksize=21))
    sobelv = 1 - norm(cv2.Sobel(v_dir, cv2.CV_64F, 0, 1, ksize=21))
    overall = np.maximum(sobelh, sobelv)
    overall = overall - (1 - blb)  # float32 - int32: float64, as there
    overall[overall < 0] = 0
    dist = -cv2.GaussianBlur((1.0 - overall) * blb, (3, 3), 0)
    marker = blb - np.array(overall >= marker_threshold, dtype=np.int32)
    marker[marker < 0] = 0
    marker = fill_holes(marker > 0).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    marker = cv2.morphologyEx(marker, cv2.MORPH_OPEN, kernel)
    marker, _ = ndi.label(marker)
    marker = remove_small(marker, min_size)
    return relabel(split_watershed(dist, marker, blb > 0, comps=lab))


def split_watershed(
    image: np.ndarray, markers: np.ndarray, mask: np.ndarray, comps: np.ndarray | None = None
) -> np.ndarray:
    """``skimage.segmentation.watershed(image, markers, mask=mask)`` (4-connected flooding),
    computed only where flooding has a choice to make.

    ``comps``: the 4-connected components of ``mask`` when the caller has them (ids may skip
    numbers). The flood cannot leave a 4-connected component of ``mask``: a component without
    a marker stays 0, one whose marker pixels all carry one id takes that id whole, and only
    components with two or more marker ids are flooded, together in one call on the box that
    holds them (one call per component cost ~0.2 ms of overhead each). Identical to the
    full-image call except where two flood fronts reach a pixel at exactly the same image
    value (skimage's queue then orders them by state that spans the whole image): the
    smoothed float maps flooded here have no such ties in practice (identical on every
    MoNuSeg test tile compared; tested on continuous scenes). About twice as fast on nucleus
    maps, where most blobs hold one marker.
    """
    if comps is None:
        comps, n = ndi.label(mask)  # 4-connected, as the flood
    else:  # the caller's 4-connected components of ``mask`` (ids may skip numbers)
        n = int(comps.max(initial=0))
    out = np.zeros(markers.shape, np.int32)
    if n == 0:
        return out
    inside = (markers > 0) & mask  # skimage labels nothing outside the mask, markers neither
    cm = comps[inside]
    mk = markers[inside].astype(np.int64)
    # distinct (component, marker id) pairs: how many marker ids each component holds
    pairs = np.unique(cm.astype(np.int64) * (int(mk.max(initial=0)) + 1) + mk)
    pc, pm = np.divmod(pairs, int(mk.max(initial=0)) + 1)
    n_ids = np.bincount(pc, minlength=n + 1)
    n_ids[0] = 0  # the background is never flooded
    single = np.zeros(n + 1, np.int32)
    one = n_ids == 1
    single[pc[one[pc]]] = pm[one[pc]]
    out = single[comps]  # components with one marker id: all of it; none: 0
    multi = np.flatnonzero(n_ids >= 2)
    if not len(multi):
        return out
    # one flood over all of them, on the box that holds them: each stays inside its own
    # component, as in the full-image call, without one call per component
    sel = np.zeros(n + 1, bool)
    sel[multi] = True
    boxes = ndi.find_objects(comps)
    r0 = min(boxes[k - 1][0].start for k in multi)
    r1 = max(boxes[k - 1][0].stop for k in multi)
    c0 = min(boxes[k - 1][1].start for k in multi)
    c1 = max(boxes[k - 1][1].stop for k in multi)
    sub = sel[comps[r0:r1, c0:c1]]
    lab = watershed(image[r0:r1, c0:c1], np.where(sub, markers[r0:r1, c0:c1], 0), mask=sub)
    out[r0:r1, c0:c1][sub] = lab[sub]
    return out


@dataclass
class Instances:
    """Post-processed prediction of one image.

    Attributes
    ----------
    labels
        ``(H, W) int32`` instance map, 0 = background, ids 1..n.
    classes
        ``{id: class id}`` (1-based ids of the model's class set); None without a type head.
    scores
        ``{id: mean foreground probability}``, the confidence used for detection ranking.
    """

    labels: np.ndarray
    classes: dict[int, int] | None
    scores: dict[int, float]


def instance_scores(labels: np.ndarray, prob: np.ndarray) -> dict[int, float]:
    """Mean of ``prob`` over each instance."""
    n = int(labels.max())
    if n == 0:
        return {}
    area = np.bincount(labels.ravel(), minlength=n + 1)
    tot = np.bincount(labels.ravel(), weights=prob.ravel().astype(np.float64), minlength=n + 1)
    ids = np.flatnonzero(area[1:]) + 1
    return {int(i): float(tot[i] / area[i]) for i in ids}


def instance_types(labels: np.ndarray, type_prob: np.ndarray) -> dict[int, int]:
    """Majority type per instance: the most frequent per-pixel argmax (types 1..T).

    ``type_prob`` is ``(T, H, W)``; ties go to the lower type id.
    """
    n = int(labels.max())
    if n == 0:
        return {}
    t = type_prob.shape[0]
    fg = labels > 0
    pix = np.argmax(type_prob[:, fg], axis=0)
    counts = np.bincount(labels[fg].astype(np.int64) * t + pix, minlength=(n + 1) * t)
    counts = counts.reshape(n + 1, t)
    present = np.flatnonzero(counts.sum(1))
    best = counts.argmax(1)
    return {int(i): int(best[i]) + 1 for i in present if i > 0}


def postprocess(out: np.ndarray, kind: str, params) -> Instances:
    """Turn one image's network output ``(C, H, W)`` (activations applied) into instances.

    ``kind`` is the card's output kind (``foreground``, ``hovernet`` or ``instances``: channel 0
    the model's instance ids, taken as they are, relabelled 1..n in id order; channel 1, when
    present, pixel classes, each instance taking its majority non-zero class); ``params`` the
    card's ``postprocess`` section. A model of kind ``instances`` gives no confidence: its
    ``scores`` are empty.
    """
    if kind == "instances":  # the model's own instance map, taken as it is
        labels = relabel(np.rint(out[0]).astype(np.int32))
        classes = None
        if out.shape[0] > 1:
            from cellbench.data.predictions.base import majority_classes

            classes = majority_classes(labels, np.rint(out[1]).astype(np.int64))
            classes = {i: classes.get(i, 0) for i in np.unique(labels[labels > 0]).tolist()}
        return Instances(labels, classes, {})
    prob = out[0]
    if params.method in ("hovernet", "hovernet_gauss"):
        if kind != "hovernet":
            raise ValueError(f"post-processing '{params.method}' needs a model with h/v outputs")
        fn = hovernet_official if params.method == "hovernet" else hovernet_instances
        labels = fn(
            prob, out[1], out[2], params.threshold, params.min_size, params.marker_threshold
        )
    elif params.method == "distance_watershed":
        labels = distance_watershed(
            prob, params.threshold, params.min_size, params.sigma, params.min_distance
        )
    else:
        labels = connected_components(prob, params.threshold, params.min_size)
    classes = None
    if kind == "hovernet" and out.shape[0] > 3:
        classes = instance_types(labels, out[3:])
    return Instances(labels, classes, instance_scores(labels, prob))


def hv_targets(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HoVer-Net's horizontal and vertical distance maps of an instance map (training targets).

    For each nucleus, the column (row) offset of every pixel from the nucleus's centre of mass
    (rounded to the nearest pixel), with negative offsets divided by their largest magnitude and
    positive ones by theirs, so each nucleus spans [-1, 1]. 0 on background. float32.
    """
    inst = np.asarray(instances)
    h = np.zeros(inst.shape, dtype=np.float32)
    v = np.zeros(inst.shape, dtype=np.float32)
    fg = inst > 0
    if not fg.any():
        return h, v
    ids, lab = np.unique(inst[fg], return_inverse=True)
    rr, cc = np.nonzero(fg)
    n = len(ids)
    cnt = np.bincount(lab, minlength=n)
    cy = np.floor(np.bincount(lab, weights=rr, minlength=n) / cnt + 0.5)
    cx = np.floor(np.bincount(lab, weights=cc, minlength=n) / cnt + 0.5)
    for offs, centre, target in ((cc, cx, h), (rr, cy, v)):
        d = (offs - centre[lab]).astype(np.float32)
        neg = np.zeros(n, np.float32)
        pos = np.zeros(n, np.float32)
        np.minimum.at(neg, lab, d)
        np.maximum.at(pos, lab, d)
        scale = np.where(d < 0, -neg[lab], pos[lab])
        target[fg] = np.divide(d, scale, out=np.zeros_like(d), where=scale > 0)
    return h, v
