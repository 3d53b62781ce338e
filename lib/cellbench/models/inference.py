"""Tiled inference: image in, nucleus instances out.

Steps for one image (units: pixels of the image unless "model pixels" is said):

1. **Channels**: RGB models get RGB (grey images are repeated); grey models get the luminance
   of RGB images (ITU-R 601 weights) or the image itself.
2. **Normalisation** over the whole image, before tiling, so that results do not depend on the
   tiling: ``zero_mean_unit_variance`` (per channel, ``(x - mean) / (std + eps)``, the
   bioimage.io convention), ``scale_unit`` (x / 255) or ``mean_std`` (per-channel constants).
3. **Resolution**: when the card gives the model's mpp and the image's mpp is known, the image is
   resized by ``image_mpp / model_mpp`` (bilinear, anti-aliased when shrinking) unless the two
   agree within 2 %. Post-processing runs in model pixels and the label map is brought back to
   the image grid by nearest-neighbour sampling; with the card's ``postprocess.grid: image``
   the output maps are resized bilinearly to the image grid instead and post-processed there.
4. **Tiles** of ``input.tile`` model pixels overlapping by ``input.halo`` (images smaller than a
   tile are reflect-padded), in batches; outputs are blended with a weight that ramps linearly
   over the overlap (the outermost quarter of the overlap, whose receptive field reaches into a
   tile's padding, gets weight 0), so seams get the mean of neighbouring tiles weighted
   towards each tile's centre; image borders keep full weight. Models with a fixed input
   shape (ONNX graphs) get exactly that shape.
5. **Activations**: sigmoid on the foreground channel when the card says the model gives logits,
   softmax over type channels; h/v maps are left as they are.
6. **Post-processing** (:mod:`cellbench.models.postprocess`) per the card.

A model whose output is already instances (card ``output.kind: instances``) is not blended:
:func:`tiled_instances` stitches its tiles by instance (step 4 otherwise as above; steps 5 and 6
are skipped: its ids and classes are taken as they are).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cellbench.models.postprocess import Instances, postprocess

MPP_TOLERANCE = 0.02


def to_channels(image: np.ndarray, channels: str) -> np.ndarray:
    """``(C, H, W) float32`` model input channels from an ``(H, W)`` or ``(H, W, C)`` image."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    img = img.astype(np.float32)
    if channels == "gray":
        if img.ndim == 3:
            img = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return img[None]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.moveaxis(img, -1, 0)


def normalize(x: np.ndarray, spec) -> np.ndarray:
    """Normalise ``(C, H, W)`` input per the card's input spec (whole image, float32)."""
    if spec.normalization == "zero_mean_unit_variance":
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        std = x.std(axis=(1, 2), keepdims=True, dtype=np.float64)
        return ((x - mean) / (std + spec.eps)).astype(np.float32)
    if spec.normalization == "mean_std":
        mean = np.asarray(spec.mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(spec.std, np.float32).reshape(-1, 1, 1)
        return (x - mean) / std
    return x / np.float32(255.0)


def resize_chw(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(C, H, W)`` float32 (anti-aliased when shrinking)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    shrink = size[0] < x.shape[1] or size[1] < x.shape[2]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out[0].numpy()


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label map onto a ``size`` grid (pixel centres)."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return labels[np.ix_(rows, cols)]


def _starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile, stride))
    return [*s, n - tile]


def _ramp(tile: int, overlap: int, head: bool, tail: bool) -> np.ndarray:
    """1-D blending weight of a tile: ramps only on sides shared with a neighbour tile.

    On a shared side the outermost ``overlap // 4`` pixels get weight 0 (their receptive
    field reaches into the tile's padding) and the rest of the overlap ramps up linearly;
    sides on the image border keep weight 1.
    """
    w = np.ones(tile, np.float32)
    if overlap <= 0:
        return w
    m = overlap // 4
    r = np.clip((np.arange(overlap, dtype=np.float32) - m + 1) / (overlap - m + 1), 0, 1)
    if head:
        w[:overlap] = r
    if tail:
        w[tile - overlap :] = np.minimum(w[tile - overlap :], r[::-1])
    return w


def _layout(x: np.ndarray, tile: int, overlap: int, multiple_of: int, fixed_shape: bool):
    """The tiling of ``x`` ``(C, H, W)``: ``(x padded, (tile h, w), (padded h, w), (overlap
    h, w), (row starts, column starts))``. Without ``fixed_shape`` an image smaller than a
    tile runs as one tile padded only to ``multiple_of``; padding reflects the image."""
    _, h, w = x.shape
    if fixed_shape:
        th = tw = tile
    else:
        th = min(tile, -(-h // multiple_of) * multiple_of)
        tw = min(tile, -(-w // multiple_of) * multiple_of)
    ph, pw = max(h, th), max(w, tw)
    if (ph, pw) != (h, w):
        x = np.pad(
            x, ((0, 0), (0, ph - h), (0, pw - w)), mode="reflect" if min(h, w) > 1 else "edge"
        )
    ov_h, ov_w = min(overlap, th // 2), min(overlap, tw // 2)
    starts = (_starts(ph, th, th - ov_h), _starts(pw, tw, tw - ov_w))
    return x, (th, tw), (ph, pw), (ov_h, ov_w), starts


def tiled_forward(
    backend: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    tile: int,
    overlap: int,
    batch_size: int = 8,
    multiple_of: int = 1,
    fixed_shape: bool = False,
) -> np.ndarray:
    """Run ``backend`` over overlapping tiles of ``x`` ``(C, H, W)``; blended ``(K, H, W)``.

    ``tile`` and ``overlap`` in input pixels. Without ``fixed_shape`` an image smaller than a
    tile runs as one tile padded only to ``multiple_of``.
    """
    _, h, w = x.shape
    x, (th, tw), (ph, pw), (ov_h, ov_w), (ys, xs) = _layout(
        x, tile, overlap, multiple_of, fixed_shape
    )

    def weight(y: int, x0: int) -> np.ndarray:
        wy = _ramp(th, ov_h, y > 0, y + th < ph)
        wx = _ramp(tw, ov_w, x0 > 0, x0 + tw < pw)
        return wy[:, None] * wx[None, :]

    acc = None
    wsum = np.zeros((ph, pw), np.float32)
    coords = [(y, x0) for y in ys for x0 in xs]
    for i in range(0, len(coords), batch_size):
        chunk = coords[i : i + batch_size]
        batch = np.stack([x[:, y : y + th, x0 : x0 + tw] for y, x0 in chunk])
        out = backend(batch)
        if acc is None:
            acc = np.zeros((out.shape[1], ph, pw), np.float32)
        for (y, x0), o in zip(chunk, out, strict=True):
            wt = weight(y, x0)
            acc[:, y : y + th, x0 : x0 + tw] += o * wt
            wsum[y : y + th, x0 : x0 + tw] += wt
    acc /= wsum
    return acc[:, :h, :w]


def tiled_instances(
    backend: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    tile: int,
    overlap: int,
    batch_size: int = 8,
    multiple_of: int = 1,
    fixed_shape: bool = False,
) -> np.ndarray:
    """Run a model whose output is an instance map (channel 0 ids, optional channel 1 pixel
    classes) over the tiles of ``x`` ``(C, H, W)`` and stitch them: ``(2, H, W) float32``.

    Tiles are laid out as in :func:`tiled_forward`. An instance of a tile is kept when its
    centroid (pixel centres at ``r + 0.5``) lies in the tile's core (from the middle of its
    overlap with the previous tile to the middle of its overlap with the next: the cores
    partition the image), so each object is taken from the one tile that sees it most
    centrally; its pixels are pasted where no earlier object lies, under a new id (1..n in
    tile order).
    An image that fits one tile runs as one call, its ids kept in order.
    """
    _, h, w = x.shape
    x, (th, tw), (ph, pw), (ov_h, ov_w), (ys, xs) = _layout(
        x, tile, overlap, multiple_of, fixed_shape
    )
    labels = np.zeros((ph, pw), np.int64)
    classes = np.zeros((ph, pw), np.float32)
    next_id = 1

    def core(starts: list[int], k: int, size: int, n: int) -> tuple[float, float]:
        """The tile's share of the axis: from the middle of its overlap with the previous
        tile to the middle of its overlap with the next (pixel edges; cores partition it)."""
        lo = (starts[k] + starts[k - 1] + size) / 2 if k > 0 else 0.0
        hi = (starts[k + 1] + starts[k] + size) / 2 if k < len(starts) - 1 else float(n)
        return lo, hi

    coords = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    for b in range(0, len(coords), batch_size):
        chunk = coords[b : b + batch_size]
        batch = np.stack([x[:, ys[i] : ys[i] + th, xs[j] : xs[j] + tw] for i, j in chunk])
        out = np.asarray(backend(batch))
        for (i, j), o in zip(chunk, out, strict=True):
            ids = np.rint(o[0]).astype(np.int64)
            if ids.size and ids.min() < 0:
                raise ValueError("the model's instance map has negative ids")
            rr, cc = np.nonzero(ids)
            if not len(rr):
                continue
            lab = ids[rr, cc]
            uniq, inv = np.unique(lab, return_inverse=True)
            n = np.bincount(inv)
            cy = np.bincount(inv, rr + ys[i]) / n
            cx = np.bincount(inv, cc + xs[j]) / n
            (y0, y1), (x0, x1) = core(ys, i, th, ph), core(xs, j, tw, pw)
            keep = (cy >= y0 - 0.5) & (cy < y1 - 0.5) & (cx >= x0 - 0.5) & (cx < x1 - 0.5)
            new = np.zeros(len(uniq), np.int64)
            new[keep] = np.arange(next_id, next_id + int(keep.sum()))
            next_id += int(keep.sum())
            gr, gc = rr + ys[i], cc + xs[j]
            put = (new[inv] > 0) & (labels[gr, gc] == 0)
            labels[gr[put], gc[put]] = new[inv][put]
            if o.shape[0] > 1:
                classes[gr[put], gc[put]] = o[1][rr[put], cc[put]]
    if next_id > 2**24:
        raise ValueError("more than 2^24 instances in one image (ids must stay exact)")
    return np.stack([labels[:h, :w].astype(np.float32), classes[:h, :w]])


#: What each output channel is, for messages.
CHANNEL_NAMES = ("foreground", "h", "v")


def check_outputs(out: np.ndarray, card) -> None:
    """A network's raw outputs ``(K, H, W)`` are usable: every value finite, and a foreground
    given as a probability (``activation: none``) within [0, 1]. Otherwise a run would
    complete with PQ 0 everywhere and no word: raises naming the model, the output channel
    and the problem (the evaluation adds the sample)."""
    from pathlib import Path

    from cellbench.core.errors import DataError

    where = Path(card.path) if getattr(card, "path", None) else Path(card.id)
    bad = ~np.isfinite(out)
    if bad.any():
        k = int(np.flatnonzero(bad.reshape(len(out), -1).any(1))[0])
        name = CHANNEL_NAMES[k] if k < 3 else f"type {k - 2}"
        n = int(bad[k].sum())
        raise DataError(
            where,
            f"model '{card.id}': output channel {k} ({name}) holds {n} NaN or infinite values "
            f"of {bad[k].size}",
        )
    if card.output.activation == "none" and out.shape[0]:
        lo, hi = float(out[0].min()), float(out[0].max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise DataError(
                where,
                f"model '{card.id}': output channel 0 (foreground) is declared a probability "
                f"(output.activation: none) but spans {lo:.3g} .. {hi:.3g}: logits? "
                "(set output.activation: sigmoid)",
            )


def verify_outputs(predictor) -> None:
    """``models verify``: run the model on a synthetic image (dark round blobs on a pale
    textured background, 128² at the model's mpp) and refuse outputs that cannot be used:
    non-finite or out-of-range values (:func:`check_outputs`), a constant foreground (a model
    that ignores its input), or a card whose outputs cannot feed its post-processing."""
    from pathlib import Path

    from cellbench.core.errors import DataError

    card = predictor.card
    where = Path(card.path) if getattr(card, "path", None) else Path(card.id)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    img = 200 + rng.normal(0, 8, (128, 128, 3))
    for cy, cx in ((30, 30), (40, 90), (90, 50), (100, 100)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = (90, 60, 140)
    img = np.clip(img, 0, 255).astype(np.uint8)
    out = predictor.output_maps(img, card.input.mpp)
    if card.output.kind == "instances":
        return
    need = 3 if card.postprocess.method.startswith("hovernet") else 1
    if out.shape[0] < need:
        raise DataError(
            where,
            f"model '{card.id}' gives {out.shape[0]} output channel(s); postprocess.method "
            f"'{card.postprocess.method}' needs {need}",
        )
    if float(out[0].max() - out[0].min()) < 1e-6:
        raise DataError(
            where,
            f"model '{card.id}': output channel 0 (foreground) is constant "
            f"({float(out[0].flat[0]):.3g}) on a synthetic image with nuclei: the model "
            "ignores its input",
        )
    postprocess(out, card.output.kind, card.postprocess)


def activate(out: np.ndarray, output_spec) -> np.ndarray:
    """Apply the card's activations in place: sigmoid on channel 0, softmax over types."""
    if output_spec.activation == "sigmoid":
        out[0] = 1.0 / (1.0 + np.exp(-out[0]))
    if output_spec.kind == "hovernet" and out.shape[0] > 3:
        t = out[3:]
        t -= t.max(axis=0, keepdims=True)
        np.exp(t, out=t)
        t /= t.sum(axis=0, keepdims=True)
    return out


def ordered_in_pool(calls, workers: int):
    """Run ``(function, *args)`` calls in a pool of ``workers`` processes and yield their
    results in order, with at most ``2 x workers`` in flight: the caller goes on producing
    (e.g. the network on the next tiles) while earlier calls run (post-processing)."""
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        pending: deque = deque()
        for fn, *args in calls:
            pending.append(pool.submit(fn, *args))
            while len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class Predictor:
    """A loaded model ready to segment images.

    Build with :func:`cellbench.models.registry.load_predictor` (or directly from a card and a
    backend). ``batch_size`` counts tiles.
    """

    card: object
    backend: Callable[[np.ndarray], np.ndarray]
    batch_size: int = 8

    @functools.cached_property
    def stain_normalizer(self):
        """The card's :class:`cellbench.models.stain.Normalizer` (counts the images it had to
        leave as they were in ``skipped``)."""
        from cellbench.models.stain import Normalizer

        return Normalizer(self.card.input.stain)

    def _geometry(self) -> tuple[int, int, bool, int]:
        spec = self.card.input
        fixed = getattr(self.backend, "fixed_tile", None)
        tile = fixed or spec.tile
        batch = getattr(self.backend, "max_batch", None) or self.batch_size
        return tile, batch, bool(fixed) or spec.fixed_shape, spec.multiple_of

    def scale_for(self, mpp: float | None) -> float:
        """Image pixels per model pixel: ``model_mpp / image_mpp`` inverted; 1 when unknown."""
        model_mpp = self.card.input.mpp
        if model_mpp is None or mpp is None:
            return 1.0
        f = mpp / model_mpp
        return 1.0 if abs(f - 1.0) <= MPP_TOLERANCE else f

    def output_maps(self, image: np.ndarray, mpp: float | None = None) -> np.ndarray:
        """Activated output maps ``(K, h, w)`` in model pixels (see module docstring); the
        card's stain normalisation first (``input.stain``, per image or slide tile)."""
        spec = self.card.input
        if spec.stain.method != "none":
            image = self.stain_normalizer(image)
        x = normalize(to_channels(image, spec.channels), spec)
        f = self.scale_for(mpp)
        if f != 1.0:
            size = (max(1, round(x.shape[1] * f)), max(1, round(x.shape[2] * f)))
            x = resize_chw(x, size)
        tile, batch, fixed, mult = self._geometry()
        if self.card.output.kind == "instances":
            return tiled_instances(self.backend, x, tile, spec.halo, batch, mult, fixed)
        out = tiled_forward(self.backend, x, tile, spec.halo, batch, mult, fixed)
        check_outputs(out, self.card)
        return activate(out, self.card.output)

    def predict(self, image: np.ndarray, mpp: float | None = None) -> Instances:
        """Instances of one image on the image's own pixel grid."""
        out = self.maps_for_postprocess(image, mpp)
        inst = postprocess(out, self.card.output.kind, self.card.postprocess)
        return self._on_grid(inst, np.asarray(image).shape[:2])

    def maps_for_postprocess(self, image: np.ndarray, mpp: float | None = None) -> np.ndarray:
        """:meth:`output_maps`, resized to the image grid when the card's post-processing runs
        there (``postprocess.grid: image``)."""
        out = self.output_maps(image, mpp)
        shape = np.asarray(image).shape[:2]
        if self.card.postprocess.grid == "image" and out.shape[1:] != shape:
            out = resize_chw(out, shape)
        return out

    @staticmethod
    def _on_grid(inst: Instances, shape: tuple[int, int]) -> Instances:
        """Bring instances computed in model pixels onto the image's ``shape``."""
        h, w = shape
        if inst.labels.shape != (h, w):
            labels = resize_labels(inst.labels, (h, w))
            kept = set(np.unique(labels).tolist())
            inst = Instances(
                labels,
                None
                if inst.classes is None
                else {k: c for k, c in inst.classes.items() if k in kept},
                {k: s for k, s in inst.scores.items() if k in kept},
            )
        return inst

    def predict_many(self, images, mpps=None, workers: int = 1):
        """Instances of several images, yielded in input order.

        ``images`` and ``mpps`` may be lazy iterables. With ``workers`` > 1, post-processing
        runs in that many processes while the network (in this process) goes on to the next
        images (:func:`ordered_in_pool`).
        """
        import itertools
        from collections import deque

        pairs = zip(images, itertools.repeat(None) if mpps is None else mpps, strict=False)
        if workers <= 1:
            for img, mpp in pairs:
                yield self.predict(img, mpp)
            return
        kind, params = self.card.output.kind, self.card.postprocess
        shapes: deque = deque()

        def calls():
            for img, mpp in pairs:
                shapes.append(np.asarray(img).shape[:2])
                yield postprocess, self.maps_for_postprocess(img, mpp), kind, params

        for inst in ordered_in_pool(calls(), workers):
            yield self._on_grid(inst, shapes.popleft())

    def predict_region(self, slide, x: int, y: int, width: int, height: int) -> Instances:
        """Instances of a whole-slide region read at the model's mpp.

        ``x, y`` are the level-0 top-left corner; ``width, height`` the output size in model
        pixels (a model without an mpp reads level 0). Label coordinates are those of the
        returned region; multiply by ``model_mpp / slide.mpp`` and add ``(x, y)`` for level-0.
        """
        model_mpp = self.card.input.mpp
        if model_mpp is None:
            region = slide.read_region(x, y, width, height)
        else:
            region = slide.read_region_mpp(x, y, width, height, model_mpp)
        return self.predict(region, model_mpp)
