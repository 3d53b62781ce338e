"""Annotations drawn onto images (numpy in, ``(H, W, 3) uint8`` RGB out).

Instance outlines are the inner boundary pixels of each instance, coloured by class (or one
colour); points are filled discs; masks are blended with ``alpha``. Colours are ``#rrggbb``
strings or RGB tuples. Fluorescence / 16-bit images are scaled to 8 bits between their 1st and
99.8th percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from skimage.segmentation import find_boundaries

#: Default class colours (colour-blind-safe Okabe-Ito, then Plotly's qualitative set).
PALETTE = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
)
#: Error review colours: matched, false positive, missed.
ERROR_COLORS = {"TP": "#00C853", "FP": "#FF1744", "FN": "#FFD600"}


def rgb(color) -> tuple[int, int, int]:
    if isinstance(color, str):
        c = color.lstrip("#")
        return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))
    return tuple(int(x) for x in color[:3])


def hex_color(color) -> str:
    """``#rrggbb`` of a colour."""
    return "#{:02x}{:02x}{:02x}".format(*rgb(color))


def class_colors(classes) -> dict[int, tuple[int, int, int]]:
    """``{class id: rgb}`` from catalog/card classes (their ``color`` or the palette)."""
    return {c.id: rgb(c.color or PALETTE[k % len(PALETTE)]) for k, c in enumerate(classes)}


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 copy of any image (grey, 16-bit, RGBA)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.dtype != np.uint8:
        f = img.astype(np.float32)
        lo, hi = np.percentile(f, [1, 99.8])
        img = (np.clip((f - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img)


def layers(labels) -> list[np.ndarray]:
    """Label maps to draw: the map itself, or the non-overlapping layers of
    :class:`~cellbench.data.sample.Objects` (so every overlapping object keeps its outline)."""
    if labels is None:
        return []
    return labels.layers() if hasattr(labels, "layers") else [labels]


def draw_instances(
    image: np.ndarray,
    labels,
    colors: Mapping[int, object] | object = "#00FF00",
    thickness: int = 1,
) -> np.ndarray:
    """Outline instances: ``colors`` is one colour or ``{instance id: colour}`` (others skip).
    ``labels`` is a map or overlapping objects (each drawn with its whole outline)."""
    if not isinstance(labels, np.ndarray):
        out = to_rgb(image)
        for lab in layers(labels):
            out = draw_instances(out, lab, colors, thickness)
        return out
    out = to_rgb(image).copy()
    lab = np.asarray(labels)
    edge = find_boundaries(lab, mode="inner")
    if thickness > 1:
        from scipy import ndimage as ndi

        edge = ndi.binary_dilation(edge, iterations=thickness - 1) & (lab > 0)
    if isinstance(colors, Mapping):
        lut = np.zeros((int(lab.max()) + 1, 4), np.uint8)
        for i, c in colors.items():
            if 0 < int(i) < len(lut):
                lut[int(i)] = (*rgb(c), 1)
        px = lut[lab[edge]]
        keep = px[:, 3] == 1
        rr, cc = np.nonzero(edge)
        out[rr[keep], cc[keep]] = px[keep, :3]
    else:
        out[edge] = rgb(colors)
    return out


def draw_points(image: np.ndarray, xy: np.ndarray, colors, radius: int = 3) -> np.ndarray:
    """Filled discs at ``xy`` (``(N, 2)`` x, y pixels); ``colors`` one colour or ``(N,)``."""
    out = to_rgb(image).copy()
    xy = np.asarray(xy, float).reshape(-1, 2)
    if not len(xy):
        return out
    dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = dx**2 + dy**2 <= radius**2
    oy, ox = dy[disk], dx[disk]
    cy = np.rint(xy[:, 1]).astype(int)[:, None] + oy[None]
    cx = np.rint(xy[:, 0]).astype(int)[:, None] + ox[None]
    h, w = out.shape[:2]
    ok = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
    if isinstance(colors, (str, tuple)):
        out[cy[ok], cx[ok]] = rgb(colors)
    else:
        col = np.array([rgb(c) for c in colors], np.uint8)
        out[cy[ok], cx[ok]] = np.broadcast_to(col[:, None, :], (*cy.shape, 3))[ok]
    return out


def draw_mask(image: np.ndarray, mask: np.ndarray, color="#00FFFF", alpha: float = 0.3):
    """Blend a binary (or label) mask's non-zero pixels with ``color``."""
    out = to_rgb(image).astype(np.float32)
    m = np.asarray(mask) > 0
    out[m] = (1 - alpha) * out[m] + alpha * np.array(rgb(color), np.float32)
    return out.astype(np.uint8)


class _Fit:
    """Drawing at a smaller size: the image area-averaged, label maps and masks nearest-sampled,
    points scaled, so outlines stay one crisp pixel in their exact colour at thumbnail size."""

    def __init__(self, shape: tuple[int, ...], max_side: int | None):
        h, w = shape[:2]
        f = max(h, w) / max_side if max_side else 1.0
        self.f = max(f, 1.0)
        self.shape = (max(1, round(h / self.f)), max(1, round(w / self.f)))
        self._r = np.minimum((np.arange(self.shape[0]) + 0.5) * h / self.shape[0], h - 1)
        self._c = np.minimum((np.arange(self.shape[1]) + 0.5) * w / self.shape[1], w - 1)

    def image(self, img):
        return thumbnail(img, max(self.shape)) if self.f > 1 else to_rgb(img)

    def labels(self, lab):
        """A map (or each layer of overlapping objects) nearest-sampled to the drawing size."""
        if self.f <= 1 or lab is None:
            return lab
        if not isinstance(lab, np.ndarray) and hasattr(lab, "layers"):
            return _Layers([self.labels(x) for x in lab.layers()])
        return np.asarray(lab)[np.ix_(self._r.astype(int), self._c.astype(int))]

    def xy(self, xy):
        return np.asarray(xy, float).reshape(-1, 2) / self.f


class _Layers(list):
    """Resampled layers of overlapping objects, drawn like the objects themselves."""

    def layers(self) -> list[np.ndarray]:
        return list(self)


def canvas(sample) -> np.ndarray:
    """The sample's image, or a light grey canvas of its ``width`` x ``height`` (no pixels)."""
    if sample.image is not None:
        return sample.image
    w, h = int(sample.meta.get("width") or 1), int(sample.meta.get("height") or 1)
    return np.full((h, w, 3), 235, np.uint8)


def sample_overlay(
    sample,
    classes=None,
    show_instances=True,
    show_points=True,
    show_tissue=True,
    max_side: int | None = None,
) -> np.ndarray:
    """A sample's image with its ground truth: outlines / points by class, tissue mask, and the
    annotated region where annotation is partial (outside it dimmed).

    A sample without pixels (points only, e.g. OCELOT regions whose patches are not local) is
    drawn on a grey canvas of its ``width`` x ``height`` from the metadata. ``max_side`` draws
    at that size (longer side, pixels): outlines one pixel wide in the legend's colours.
    """
    colors = class_colors(classes or [])
    base = canvas(sample)
    fit = _Fit(base.shape, max_side)
    img = fit.image(base)
    img = _dim_outside(img, fit, sample.annotated_region)
    if show_tissue and sample.tissue_mask is not None:
        img = draw_mask(img, fit.labels(sample.tissue_mask), "#00FFFF", 0.2)
    if show_instances and sample.truth is not None:
        inst = fit.labels(sample.truth)
        if sample.classes and colors:
            per = {i: colors.get(c, (0, 255, 0)) for i, c in sample.classes.items()}
            img = draw_instances(img, inst, per)
        else:
            img = draw_instances(img, inst)
    if show_points and sample.points is not None and len(sample.points):
        cols = [colors.get(int(c), (0, 255, 0)) for c in sample.points.cls]
        img = draw_points(img, fit.xy(sample.points.xy), cols, radius=max(2, img.shape[0] // 200))
    return img


def _dim_outside(img: np.ndarray, fit: _Fit, region) -> np.ndarray:
    """Darken what lies outside an annotated region (None: nothing)."""
    if region is None:
        return img
    return draw_mask(img, ~fit.labels(np.asarray(region, bool)), "#000000", 0.45)


def error_overlay_instances(
    image, true, pred, errors, max_side: int | None = None, region=None
) -> np.ndarray:
    """TP outlines (prediction) green, FP red, FN (ground truth) yellow; outside ``region``
    (a partly annotated image's annotated area) dimmed."""
    fit = _Fit(np.asarray(image).shape, max_side)
    img = draw_instances(
        _dim_outside(fit.image(image), fit, region),
        fit.labels(pred),
        {int(i): ERROR_COLORS["TP"] for i in errors.tp_pred}
        | {int(i): ERROR_COLORS["FP"] for i in errors.fp},
    )
    return draw_instances(img, fit.labels(true), {int(i): ERROR_COLORS["FN"] for i in errors.fn})


def error_overlay_points(
    image, true, pred, errors, radius: int = 4, max_side: int | None = None, region=None
) -> np.ndarray:
    """Matched predictions green, FP red, missed GT yellow; outside ``region`` dimmed."""
    fit = _Fit(np.asarray(image).shape, max_side)
    xy = np.concatenate([pred.xy[errors.tp_pred], pred.xy[errors.fp], true.xy[errors.fn]])
    cols = (
        [ERROR_COLORS["TP"]] * len(errors.tp_pred)
        + [ERROR_COLORS["FP"]] * len(errors.fp)
        + [ERROR_COLORS["FN"]] * len(errors.fn)
    )
    r = radius if fit.f <= 1 else max(2, round(radius / fit.f * 2))
    return draw_points(_dim_outside(fit.image(image), fit, region), fit.xy(xy), cols, r)


def thumbnail(image: np.ndarray, max_side: int = 256) -> np.ndarray:
    """A smaller RGB copy whose longer side is at most ``max_side`` (area-averaged)."""
    img = to_rgb(image)
    h, w = img.shape[:2]
    f = max(h, w) / max_side
    if f <= 1:
        return img
    from skimage.transform import resize

    out = resize(
        img, (max(1, round(h / f)), max(1, round(w / f))), anti_aliasing=True, preserve_range=True
    )
    return out.astype(np.uint8)


def square(image: np.ndarray, fill: int = 245) -> np.ndarray:
    """``image`` centred on a square canvas of its longer side (grid tiles of one size)."""
    img = to_rgb(image)
    h, w = img.shape[:2]
    n = max(h, w)
    if h == w:
        return img
    out = np.full((n, n, 3), fill, np.uint8)
    y, x = (n - h) // 2, (n - w) // 2
    out[y : y + h, x : x + w] = img
    return out
