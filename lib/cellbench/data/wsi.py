"""Whole-slide images: tiffslide first, OpenSlide where tiffslide cannot read (MRXS, DICOM).

Coordinates are level-0 pixels ``(x, y)``; ``mpp`` is microns per level-0 pixel. Every failure,
at open or at read time (truncated tiles, unsupported compression), raises
:class:`~cellbench.core.errors.DataError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError


@dataclass
class Slide:
    """An open slide.

    Attributes
    ----------
    path
        The slide file.
    backend
        ``"tiffslide"`` or ``"openslide"``.
    dimensions
        Level-0 ``(width, height)`` in pixels.
    mpp
        Microns per level-0 pixel from the file's metadata (None when absent).
    level_downsamples
        Downsample factor of each level relative to level 0.
    """

    path: Path
    backend: str
    handle: Any
    dimensions: tuple[int, int]
    mpp: float | None
    level_downsamples: tuple[float, ...]

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def associated_images(self) -> list[str]:
        return [k for k in self.handle.associated_images if k]

    def read_region(self, x: int, y: int, width: int, height: int, level: int = 0) -> np.ndarray:
        """Read a ``(height, width, 3) uint8`` RGB region; ``x, y`` in level-0 pixels."""
        try:
            region = self.handle.read_region((int(x), int(y)), level, (int(width), int(height)))
            arr = np.asarray(region)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a data problem
            raise DataError(
                self.path,
                f"cannot read region at ({x}, {y}) level {level}: {type(e).__name__}: {e}",
            ) from None
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        return np.ascontiguousarray(arr)

    def read_region_mpp(
        self, x: int, y: int, width: int, height: int, mpp: float, source_mpp: float | None = None
    ) -> np.ndarray:
        """Read a region at a requested resolution.

        Parameters
        ----------
        x, y
            Top-left corner in level-0 pixels.
        width, height
            Output size in pixels *at the requested mpp*.
        mpp
            Requested microns per pixel.
        source_mpp
            Level-0 mpp to assume when the file has none (or to override it).

        The finest level no coarser than the request is read and resized (anti-aliased).
        """
        base = source_mpp or self.mpp
        if base is None:
            raise DataError(self.path, "slide has no microns-per-pixel metadata; pass source_mpp")
        scale = mpp / base  # level-0 pixels per output pixel
        level = max(
            (i for i, d in enumerate(self.level_downsamples) if d <= scale + 1e-6), default=0
        )
        ds = self.level_downsamples[level]
        w0, h0 = round(width * scale), round(height * scale)
        arr = self.read_region(x, y, max(1, round(w0 / ds)), max(1, round(h0 / ds)), level)
        if arr.shape[:2] == (height, width):
            return arr
        from skimage.transform import resize

        out = resize(arr, (height, width), order=1, anti_aliasing=True, preserve_range=True)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def thumbnail(self, max_size: int = 512) -> np.ndarray:
        """An RGB thumbnail whose longer side is ``max_size`` pixels."""
        try:
            im = self.handle.get_thumbnail((max_size, max_size))
        except Exception as e:  # noqa: BLE001
            raise DataError(self.path, f"cannot build thumbnail: {type(e).__name__}: {e}") from None
        return np.asarray(im.convert("RGB"))


def open_slide(path: str | Path) -> Slide:
    """Open a slide with tiffslide, falling back to OpenSlide (optional dependency)."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file not found")
    errors = []
    for backend, mpp_key in (("tiffslide", "tiffslide.mpp-x"), ("openslide", "openslide.mpp-x")):
        try:
            if backend == "tiffslide":
                import tiffslide

                h = tiffslide.TiffSlide(p)
            else:
                import openslide

                h = openslide.OpenSlide(str(p))
        except ImportError:
            hint = "openslide-python openslide-bin" if backend == "openslide" else "tiffslide"
            errors.append(f"{backend}: not installed (pip install {hint})")
            continue
        except Exception as e:  # noqa: BLE001
            errors.append(f"{backend}: {type(e).__name__}: {e}")
            continue
        return Slide(
            p,
            backend,
            h,
            tuple(h.dimensions),
            _mpp(h.properties.get(mpp_key)),
            tuple(float(d) for d in h.level_downsamples),
        )
    raise DataError(p, "cannot open slide (" + "; ".join(errors) + ")")


def _mpp(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None
