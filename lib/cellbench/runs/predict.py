"""``cellbench predict``: a model on an image, a folder, or a whole-slide image (a region, or the
whole slide with automatic tissue detection), tile by tile, stitched seamlessly.

Data flow: source (image / slide region, read at the model's mpp) -> tiles with overlap ->
the model's own tiled inference and post-processing per tile -> stitching -> nuclei (one
cropped mask each, in *working pixels*) -> outputs (QuPath GeoJSON, nucleus table, instance
map; written by :mod:`cellbench.cli.predict` through the QuPath layer).

Working pixels: the source resampled to the model's mpp (the source's own pixels when either
mpp is unknown or they agree within 2%). ``scale`` = source pixels per working pixel; outputs
are given in *source* (level-0) pixels and microns.

Stitching rule (documented, tested): the working grid is cut into tiles of ``tile`` pixels that
overlap by ``overlap``. Each tile is predicted on a larger window (:func:`context_window`)
aligned to the model's own network tiling, so the network output inside the tile is what
whole-image inference gives; post-processing runs on the window. Each tile's **core** is the
tile less half the overlap on every side that has a neighbour, so the cores partition the
image. A nucleus is kept only from the tile whose core holds its centroid; nuclei touching the
window's edge inside the image are dropped there (cut; the window of the tile whose core holds
them has them whole when they are smaller than the context). Where two kept nuclei of
neighbouring tiles still overlap (one nucleus seen with centroids on both sides of a seam),
the one kept first (raster order) stays and the other is dropped when they share more than
half of the smaller one. With local post-processing (connected components, distance
watershed) the stitched nuclei equal whole-image inference up to a nucleus or two (measured PQ
0.995-0.998 between the two on a MoNuSeg test image, 256 px tiles); HoVer-Net's
post-processing min-max normalises the h/v maps and their gradients over the image it is
given, so with it tiles and whole image differ a little more (README: measured figures).

Resume: each finished tile is written to ``<work>/tile_<row>_<col>.npz`` atomically; a run with
the same model, source and tiling skips them (the work folder is keyed by those).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.atomic import write_bytes_atomic
from cellbench.core.errors import CellbenchError, DataError
from cellbench.data.predictions import NPZ_ERRORS
from cellbench.data.sample import Objects

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".qptiff", ".bif", ".vms", ".dcm")


@dataclass
class Nuclei:
    """Stitched nuclei of one source, in working pixels.

    ``objects`` holds one cropped mask per nucleus (ids 1..n); ``classes`` / ``scores`` are keyed
    by id; ``scale`` is source pixels per working pixel and ``offset`` the working grid's
    top-left corner in source pixels; ``mpp`` the source's microns per pixel (None: unknown).
    """

    name: str
    objects: Objects
    classes: dict[int, int] | None
    scores: dict[int, float]
    scale: float
    offset: tuple[int, int]
    mpp: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    def label_map(self) -> np.ndarray:
        """The nuclei as one ``int32`` map of the working grid (they do not overlap)."""
        return self.objects.to_label_map()


# -- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """How to open a :class:`Source` again, e.g. in a worker process (picklable)."""

    kind: str  # "image" or "slide"
    path: str
    model_mpp: float | None
    region: tuple[int, int, int, int] | None = None
    tissue: bool = True
    mpp: float | None = None

    def open(self, tissue: bool | None = None) -> Source:
        """The source (``tissue`` overrides the tissue detection of slides)."""
        if self.kind == "image":
            return image_source(self.path, self.model_mpp, self.mpp)
        t = self.tissue if tissue is None else tissue
        return slide_source(self.path, self.model_mpp, self.region, t, self.mpp)


@dataclass
class Source:
    """Something to predict on: ``read(x, y, w, h)`` gives working pixels of the area."""

    name: str
    shape: tuple[int, int]  # working (H, W)
    scale: float
    offset: tuple[int, int]
    mpp: float | None
    read: Callable[[int, int, int, int], np.ndarray]
    tissue: np.ndarray | None = None  # bool mask on a coarse grid, or None (all)
    identity: dict[str, Any] = field(default_factory=dict)
    spec: SourceSpec | None = None


def _working_scale(source_mpp: float | None, model_mpp: float | None) -> float:
    if source_mpp is None or model_mpp is None:
        return 1.0
    f = model_mpp / source_mpp
    return 1.0 if abs(f - 1.0) <= 0.02 else f


def image_source(path: str | Path, model_mpp: float | None, mpp: float | None = None) -> Source:
    """A plain image file (decoded whole; ``mpp`` of the image, None: unknown)."""
    from cellbench.data.imageio import read_image
    from cellbench.models.inference import resize_chw

    p = Path(path)
    img = read_image(p)
    if img.ndim == 3 and img.shape[0] <= 4 < img.shape[-1]:  # planar (C, H, W), e.g. ImageJ
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 2:  # two channels: shown as red and green
        img = np.concatenate([img, np.zeros_like(img[..., :1])], axis=-1)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    scale = _working_scale(mpp, model_mpp)
    if scale != 1.0:
        size = (max(1, round(img.shape[0] / scale)), max(1, round(img.shape[1] / scale)))
        chw = resize_chw(np.moveaxis(img.astype(np.float32), -1, 0), size)
        hwc = np.moveaxis(chw, 0, -1)
        if img.dtype.kind in "ui":  # keep the stored range (the model normalises)
            info = np.iinfo(img.dtype)
            hwc = np.clip(np.rint(hwc), info.min, info.max)
        img = hwc.astype(img.dtype)

    def read(x, y, w, h):
        return img[y : y + h, x : x + w]

    st = p.stat()
    ident = {"path": str(p.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns, "mpp": mpp}
    spec = SourceSpec("image", str(p), model_mpp, mpp=mpp)
    return Source(p.stem, img.shape[:2], scale, (0, 0), mpp, read, None, ident, spec)


def slide_source(
    path: str | Path,
    model_mpp: float | None,
    region: tuple[int, int, int, int] | None = None,
    tissue: bool = True,
    mpp: float | None = None,
) -> Source:
    """A whole-slide image: ``region`` ``(x, y, w, h)`` in level-0 pixels, else the whole slide
    (with ``tissue``: only tiles that hold tissue, see :func:`tissue_mask`)."""
    from cellbench.data.wsi import open_slide

    slide = open_slide(path)
    base = mpp or slide.mpp
    scale = _working_scale(base, model_mpp)
    x0, y0, w0, h0 = region or (0, 0, *slide.dimensions)
    W, H = slide.dimensions
    if not (0 <= x0 < W and 0 <= y0 < H and w0 > 0 and h0 > 0):
        raise DataError(Path(path), f"region {region} lies outside the {W}x{H} slide")
    w0, h0 = min(w0, W - x0), min(h0, H - y0)
    shape = (max(1, round(h0 / scale)), max(1, round(w0 / scale)))

    def read(x, y, w, h):
        lx, ly = x0 + round(x * scale), y0 + round(y * scale)
        if scale == 1.0:
            return slide.read_region(lx, ly, w, h)
        return slide.read_region_mpp(lx, ly, w, h, model_mpp, source_mpp=base)

    mask = None
    if tissue and region is None:
        mask = tissue_mask(slide.thumbnail(1024))
    st = Path(path).stat()
    ident = {
        "path": str(Path(path).resolve()),
        "size": st.st_size,
        "mtime": st.st_mtime_ns,
        "region": list(region) if region else None,
        "tissue": bool(mask is not None),
        "mpp": base,
    }
    spec = SourceSpec("slide", str(path), model_mpp, region, tissue, mpp)
    return Source(Path(path).stem, shape, scale, (x0, y0), base, read, mask, ident, spec)


def tissue_mask(thumb: np.ndarray, min_fraction: float = 0.001) -> np.ndarray:
    """Tissue on a slide thumbnail: saturation above its Otsu threshold (white glass and grey
    pen-free background are unsaturated), closed and holes filled, specks below
    ``min_fraction`` of the thumbnail removed. Returns a bool mask of the thumbnail's shape."""
    from scipy import ndimage as ndi
    from skimage.color import rgb2hsv
    from skimage.filters import threshold_otsu
    from skimage.morphology import disk

    rgb = np.asarray(thumb)[..., :3]
    sat = rgb2hsv(rgb)[..., 1]
    if float(sat.max()) - float(sat.min()) < 0.02:
        return np.ones(sat.shape, bool)  # uniform: nothing to tell apart
    m = sat > max(threshold_otsu(sat), 0.05)
    m = ndi.binary_closing(m, structure=disk(2))
    m = ndi.binary_fill_holes(m)
    lab, n = ndi.label(m)
    if n:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = sizes[lab] >= max(1, int(min_fraction * m.size))
    return m


# -- tiling and stitching ----------------------------------------------------------------------


def context_window(y: int, h: int, n: int, inner: int, halo: int) -> tuple[int, int]:
    """The window ``[lo, hi)`` read around a tile ``[y, y + h)`` of an axis of ``n`` pixels so
    that the network sees what it sees on the whole image: it starts on the network's own tile
    stride ``inner`` (whole-image inference tiles from 0 in steps of ``inner``) at least
    ``halo`` before the tile, and ends a whole number of strides plus ``halo`` later, at least
    ``halo`` after the tile (or at the image's edges). Inside the tile the blended network
    output then equals the whole-image output."""
    lo = max(0, (y - halo) // inner * inner)
    k = max(1, -(-(y + h - lo) // inner))  # whole strides past the tile, then the halo
    hi = min(n, lo + k * inner + halo)
    return lo, hi


def tile_starts(n: int, side: int, stride: int) -> list[int]:
    """Tile starts along an axis of ``n`` pixels: ``0, stride, ...`` until a tile reaches the
    end (tiles at the end are cut by the edge, not shifted, so they stay on the stride)."""
    out = [0]
    while out[-1] + side < n:
        out.append(out[-1] + stride)
    return out


def tile_grid(shape: tuple[int, int], side: int, stride: int) -> list[tuple[int, int, int, int]]:
    """``(row, col, y, x)`` of the tiles covering a working grid of ``shape``."""
    if stride <= 0 or stride > side:
        raise CellbenchError(f"tile stride {stride} must lie in 1..{side}")
    ys, xs = tile_starts(shape[0], side, stride), tile_starts(shape[1], side, stride)
    return [(i, j, y, x) for i, y in enumerate(ys) for j, x in enumerate(xs)]


def core_bounds(starts: list[int], k: int, side: int, n: int) -> tuple[float, float]:
    """The core ``[lo, hi)`` of tile ``k`` along one axis: midway into each overlap."""
    lo = 0.0 if k == 0 else (starts[k] + min(starts[k - 1] + side, n)) / 2
    hi = float(n) if k == len(starts) - 1 else (starts[k + 1] + min(starts[k] + side, n)) / 2
    return lo, hi


def _tile_nuclei(
    inst, y, x, h, w, core, edges
) -> list[tuple[tuple, np.ndarray, int | None, float]]:
    """Nuclei of one tile's prediction kept by the core rule: ``(box in working px, mask,
    class, score)``. ``edges``: (top, left, bottom, right) sides that have a neighbour."""
    from scipy import ndimage as ndi

    lab = inst.labels
    out = []
    (ylo, yhi), (xlo, xhi) = core
    top, left, bottom, right = edges
    for k, sl in enumerate(ndi.find_objects(lab)):
        if sl is None:
            continue
        i = k + 1
        m = lab[sl] == i
        r0, c0, r1, c1 = sl[0].start, sl[1].start, sl[0].stop, sl[1].stop
        if (top and r0 == 0) or (left and c0 == 0) or (bottom and r1 == h) or (right and c1 == w):
            continue  # cut by the tile edge: a neighbour sees it whole
        rr, cc = np.nonzero(m)
        cy, cx = y + r0 + rr.mean(), x + c0 + cc.mean()
        if not (ylo <= cy < yhi and xlo <= cx < xhi):
            continue
        cls = None if inst.classes is None else inst.classes.get(i)
        out.append(((y + r0, x + c0, y + r1, x + c1), m, cls, float(inst.scores.get(i, 1.0))))
    return out


def _pack_tile(nuclei) -> bytes:
    boxes = np.array([b for b, *_ in nuclei], np.int64).reshape(-1, 4)
    obj = Objects(
        (int(boxes[:, 2].max(initial=1)), int(boxes[:, 3].max(initial=1))),
        np.arange(1, len(nuclei) + 1),
        boxes,
        [m for _, m, *_ in nuclei],
    )
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        **obj.pack(),
        cls=np.array([-1 if c is None else c for *_, c, _ in nuclei], np.int64),
        score=np.array([s for *_, s in nuclei], np.float64),
    )
    return buf.getvalue()


def _tile_path(work: Path, g) -> Path:
    return work / f"tile_{g[0]:04d}_{g[1]:04d}.npz"


def _readable(path: Path) -> bool:
    """A finished tile's file that opens (a damaged one is predicted again)."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"cls", "score"} <= set(z.files)
    except NPZ_ERRORS:
        return False


def _unpack_tile(path: Path):
    try:
        return _unpack_bytes(path)
    except NPZ_ERRORS as e:
        raise DataError(path, f"finished tile unreadable ({type(e).__name__}: {e})") from None


def _unpack_bytes(data) -> list:
    """Nuclei of one tile from :func:`_pack_tile`'s bytes (or a file of them)."""
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with np.load(src, allow_pickle=False) as z:
        obj = Objects.unpack(z)
        cls, score = z["cls"], z["score"]
    return [
        (tuple(int(v) for v in b), m, None if c < 0 else int(c), float(s))
        for b, m, c, s in zip(obj.boxes, obj.masks, cls, score, strict=True)
    ]


def _dedup(kept, new, index, cell: int):
    """Add ``new`` nuclei to ``kept``: one sharing more than half of the smaller one's pixels
    with a kept nucleus is the same nucleus seen from both sides of a seam and is dropped; a
    smaller overlap leaves the shared pixels to the nucleus kept first, so nuclei never
    overlap."""
    for box, m, c, s in new:
        r0, c0, r1, c1 = box
        m = m.copy()
        keys = {
            (a, b)
            for a in range(r0 // cell, (r1 - 1) // cell + 1)
            for b in range(c0 // cell, (c1 - 1) // cell + 1)
        }
        near = {k for key in keys for k in index.get(key, ())}
        dup = False
        for k in sorted(near):
            (q0, p0, q1, p1), mk, *_ = kept[k]
            y0, x0, y1, x1 = max(r0, q0), max(c0, p0), min(r1, q1), min(c1, p1)
            if y0 >= y1 or x0 >= x1:
                continue
            a = m[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0]
            shared = a & mk[y0 - q0 : y1 - q0, x0 - p0 : x1 - p0]
            n = np.count_nonzero(shared)
            if not n:
                continue
            if n * 2 > min(m.sum(), mk.sum()):
                dup = True
                break
            a[shared] = False  # a view into m
        if dup or not m.any():
            continue
        kept.append((box, m, c, s))
        for key in keys:
            index.setdefault(key, []).append(len(kept) - 1)


def _work_dir(root: Path, card, src: Source, tile: int, overlap: int) -> Path:
    ident = {
        "model": card.id,
        "sha256": card.weights.sha256,
        "source": src.identity,
        "tile": tile,
        "overlap": overlap,
    }
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
    return root / f"{src.name}-{h}"


@dataclass(frozen=True)
class TileGeometry:
    """How a working grid is tiled (working pixels): tile side and stride, the tiles' starts
    along each axis, and the model's own network tiling (``inner`` stride, ``halo``)."""

    shape: tuple[int, int]
    side: int
    stride: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    inner: int
    halo: int

    @classmethod
    def of(cls, shape: tuple[int, int], tile: int, overlap: int, predictor) -> TileGeometry:
        H, W = shape
        side = min(tile, max(H, W))
        stride = max(1, side - min(overlap, side - 1))
        spec = predictor.card.input
        fixed = getattr(predictor.backend, "fixed_tile", None)
        net_tile = int(fixed or spec.tile)
        halo = int(spec.halo)
        inner = max(1, net_tile - min(halo, net_tile // 2))
        grid = tile_grid(shape, side, stride)
        ys = tuple(sorted({g[2] for g in grid}))
        xs = tuple(sorted({g[3] for g in grid}))
        return cls((H, W), side, stride, ys, xs, inner, halo)

    def grid(self) -> list[tuple[int, int, int, int]]:
        return [(i, j, y, x) for i, y in enumerate(self.ys) for j, x in enumerate(self.xs)]

    def window(self, y: int, x: int) -> tuple[int, int, int, int]:
        """``(wy0, wy1, wx0, wx1)``: the window read around the tile at ``(y, x)``."""
        H, W = self.shape
        h, w = min(self.side, H - y), min(self.side, W - x)
        wy0, wy1 = context_window(y, h, H, self.inner, self.halo)
        wx0, wx1 = context_window(x, w, W, self.inner, self.halo)
        return wy0, wy1, wx0, wx1


def tile_maps(predictor, src: Source, geom: TileGeometry, y: int, x: int) -> np.ndarray:
    """The network's activated output maps on the window around one tile (the GPU part)."""
    wy0, wy1, wx0, wx1 = geom.window(y, x)
    img = src.read(wx0, wy0, wx1 - wx0, wy1 - wy0)
    return predictor.output_maps(img, None)  # already at the model's mpp


def tile_nuclei_from_maps(maps, kind, params, geom: TileGeometry, g) -> list:
    """Post-processing of one tile's window maps and the core rule (the CPU part): the nuclei
    of tile ``g = (row, col, y, x)`` kept by this tile (see the module docstring)."""
    from cellbench.models.postprocess import postprocess

    i, j, y, x = g
    H, W = geom.shape
    inst = postprocess(maps, kind, params)
    wy0, wy1, wx0, wx1 = geom.window(y, x)
    core = (
        core_bounds(list(geom.ys), i, geom.side, H),
        core_bounds(list(geom.xs), j, geom.side, W),
    )
    # the window's sides inside the image: nuclei touching them are cut there
    edges = (wy0 > 0, wx0 > 0, wy1 < H, wx1 < W)
    return _tile_nuclei(inst, wy0, wx0, wy1 - wy0, wx1 - wx0, core, edges)


def predict_tile(predictor, src: Source, geom: TileGeometry, g) -> list:
    """One tile end to end: network on its window, post-processing, the core rule."""
    maps = tile_maps(predictor, src, geom, g[2], g[3])
    return tile_nuclei_from_maps(
        maps, predictor.card.output.kind, predictor.card.postprocess, geom, g
    )


@dataclass(frozen=True)
class TileTask:
    """One tile for an executor's worker: the model's card (the worker loads its weights,
    checking their sha256, and post-processes as the card says), the device, which source,
    how it is tiled, and which tile."""

    card: Any  # the ModelCard
    card_path: str | None  # where the card lies (relative weights resolve from it)
    device: str
    compile: bool
    source: SourceSpec
    geom: TileGeometry
    tile: tuple[int, int, int, int]


_WORKER: dict[str, Any] = {}


def run_tile_task(task: TileTask) -> bytes:
    """Executor task: predict one tile in a worker process (model and source kept open per
    process); returns the tile's nuclei packed as :func:`_pack_tile` writes them."""
    from cellbench.models.card import LoadedCard
    from cellbench.models.registry import load_predictor
    from cellbench.runs.executor import worker_device

    key = (task.card.model_dump_json(), task.card_path, task.device, task.compile)
    if _WORKER.get("model_key") != key:
        card = LoadedCard(task.card, None if task.card_path is None else Path(task.card_path))
        _WORKER["predictor"] = load_predictor(
            card, device=worker_device(task.device), compile=task.compile
        )
        _WORKER["model_key"] = key
    if _WORKER.get("source_key") != task.source:
        _WORKER["source"] = task.source.open(tissue=False)  # the caller chose the tiles
        _WORKER["source_key"] = task.source
    return _pack_tile(predict_tile(_WORKER["predictor"], _WORKER["source"], task.geom, task.tile))


def _computed_tiles(predictor, src, geom, todo, executor, post_workers, device, compile):
    """Yield the nuclei of each tile of ``todo`` in order: in this process, with the
    post-processing in ``post_workers`` processes overlapping the network, or as tasks on an
    executor's workers (the same functions; results identical)."""
    if executor is not None and executor.name != "local":
        if src.spec is None:
            raise CellbenchError("this source cannot be reopened in worker processes")
        card = predictor.card
        if not hasattr(card, "card"):
            raise CellbenchError("workers need the model's card with its file (a LoadedCard)")
        path = None if card.path is None else str(card.path)
        tasks = (TileTask(card.card, path, device, compile, src.spec, geom, g) for g in todo)
        for packed in executor.map(run_tile_task, tasks):
            yield _unpack_bytes(packed)
        return
    if post_workers <= 0:
        for g in todo:
            yield predict_tile(predictor, src, geom, g)
        return
    from cellbench.models.inference import ordered_in_pool

    kind, params = predictor.card.output.kind, predictor.card.postprocess
    calls = (
        (tile_nuclei_from_maps, tile_maps(predictor, src, geom, g[2], g[3]), kind, params, geom, g)
        for g in todo
    )
    yield from ordered_in_pool(calls, post_workers)


def predict_source(
    predictor,
    src: Source,
    tile: int = 1024,
    overlap: int = 128,
    work: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor=None,
    post_workers: int = 0,
    device: str = "cpu",
    should_stop: Callable[[], bool] | None = None,
    compile: bool = False,
) -> Nuclei:
    """Predict every tile of ``src`` (tissue tiles only when it has a tissue mask) and stitch.

    ``tile`` and ``overlap`` are working pixels; ``overlap`` should exceed the largest nucleus
    diameter. ``work``: a folder for per-tile results (resume); None keeps them in memory.
    ``executor`` (:mod:`cellbench.runs.executor`, not local): tiles run as tasks on its
    workers (on ``device``, ``compile``: torch.compile there); ``post_workers``: in this
    process, post-processing runs in that many processes while the network goes on (GPU
    inference). Tiles are stitched in raster order whatever computed them, so the nuclei are
    identical. ``should_stop``: checked between tiles
    (finished tiles stay in ``work``; :class:`KeyboardInterrupt` is raised).
    """
    geom = TileGeometry.of(src.shape, tile, overlap, predictor)
    grid = geom.grid()
    todo = [g for g in grid if _has_tissue(src, g[2], g[3], geom.side)]
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    done = {g for g in todo if work is not None and _readable(_tile_path(work, g))}
    fresh = _computed_tiles(
        predictor,
        src,
        geom,
        [g for g in todo if g not in done],
        executor,
        post_workers,
        device,
        compile,
    )
    kept: list = []
    index: dict = {}
    cell = max(64, geom.side // 4)
    try:
        for n, g in enumerate(todo):
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            if g in done:
                nuclei = _unpack_tile(_tile_path(work, g))
            else:
                nuclei = next(fresh)
                if work is not None:
                    write_bytes_atomic(_tile_path(work, g), _pack_tile(nuclei))
            _dedup(kept, nuclei, index, cell)
            if progress:
                progress(n + 1, len(todo))
    finally:
        fresh.close()
    classes = None
    if any(c is not None for _, _, c, _ in kept):
        classes = {k + 1: int(c) for k, (_, _, c, _) in enumerate(kept) if c is not None}
    obj = Objects(
        src.shape,
        np.arange(1, len(kept) + 1),
        np.array([b for b, *_ in kept], np.int64).reshape(-1, 4),
        [m for _, m, *_ in kept],
    )
    scores = {k + 1: s for k, (*_, s) in enumerate(kept)}
    meta = {
        "tiles": len(grid),
        "tiles_predicted": len(todo),
        "tile": geom.side,
        "overlap": geom.side - geom.stride,
    }
    return Nuclei(src.name, obj, classes, scores, src.scale, src.offset, src.mpp, meta)


def _has_tissue(src: Source, y: int, x: int, tile: int) -> bool:
    if src.tissue is None:
        return True
    th, tw = src.tissue.shape
    H, W = src.shape
    r0, r1 = int(y / H * th), int(np.ceil(min(H, y + tile) / H * th))
    c0, c1 = int(x / W * tw), int(np.ceil(min(W, x + tile) / W * tw))
    return bool(src.tissue[r0 : max(r1, r0 + 1), c0 : max(c1, c0 + 1)].any())


# -- the nucleus table -------------------------------------------------------------------------


def nucleus_rows(nuc: Nuclei, class_names: dict[int, str] | None = None) -> Iterator[dict]:
    """One row per nucleus: id, centroid (source px and um), bbox (source px), area (px^2,
    um^2), perimeter (px, um), eccentricity, class, probability, source name. Measurements are
    computed in working pixels and converted with ``scale`` (source px per working px)."""
    from skimage.measure import regionprops

    s, (ox, oy) = nuc.scale, nuc.offset
    mpp = nuc.mpp
    for i, (r0, c0, r1, c1), m in zip(
        nuc.objects.ids, nuc.objects.boxes, nuc.objects.masks, strict=True
    ):
        p = regionprops(m.astype(np.uint8))[0]
        cy, cx = p.centroid
        x, y = ox + (c0 + cx) * s, oy + (r0 + cy) * s
        cid = None if nuc.classes is None else nuc.classes.get(int(i))
        area = float(p.area) * s * s
        per = float(p.perimeter) * s
        yield {
            "id": int(i),
            "source": nuc.name,
            "x_px": x,
            "y_px": y,
            "x_um": None if mpp is None else x * mpp,
            "y_um": None if mpp is None else y * mpp,
            "bbox_x0": ox + c0 * s,
            "bbox_y0": oy + r0 * s,
            "bbox_x1": ox + c1 * s,
            "bbox_y1": oy + r1 * s,
            "area_px": area,
            "area_um2": None if mpp is None else area * mpp * mpp,
            "perimeter_px": per,
            "perimeter_um": None if mpp is None else per * mpp,
            "eccentricity": float(p.eccentricity),
            "class_id": cid,
            "class": None if cid is None else (class_names or {}).get(cid, str(cid)),
            "probability": float(nuc.scores.get(int(i), 1.0)),
        }
