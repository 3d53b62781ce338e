"""Reading images and label images, with errors that name the file.

Conventions: RGB images come back as ``(H, W, 3) uint8`` (grayscale as ``(H, W)``), label images
as ``(H, W) int32`` with 0 = background. Sizes are ``(width, height)`` in pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_pixels, limits

_TIFF = {".tif", ".tiff", ".qptiff", ".svs"}
#: .npy files up to this size are read at once (memory-mapping costs ~0.3 ms a file).
_NPY_DIRECT_BYTES = 64 << 20


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` of an image from its header, without decoding pixels."""
    p = Path(path)
    try:
        if p.suffix.lower() in _TIFF:
            import tifffile

            with tifffile.TiffFile(p) as tf:
                page = tf.pages[0]
                return int(page.imagewidth), int(page.imagelength)
        from PIL import Image

        with Image.open(p) as im:
            return im.size
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is a data problem
        raise DataError(p, f"unreadable image header ({type(e).__name__}: {e})") from None


def image_mpp(path: str | Path) -> float | None:
    """Microns per pixel recorded in an image's header, or None when it records none.

    Read (TIFF only, no pixels decoded): OME-XML ``PhysicalSizeX`` (in µm unless
    ``PhysicalSizeXUnit`` says nm or mm), an Aperio description's ``MPP = x``, ImageJ's
    ``unit=micron`` with its X resolution, and ``ResolutionUnit`` centimetre. Inch-based
    resolutions (72 / 96 / 300 dpi are what editors write by default) are not trusted.
    """
    import re

    p = Path(path)
    if p.suffix.lower() not in _TIFF:
        return None
    try:
        import tifffile

        with tifffile.TiffFile(p) as tf:
            page = tf.pages[0]
            desc = page.description or ""
            if tf.is_ome and tf.ome_metadata:
                m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tf.ome_metadata)
                u = re.search(r'PhysicalSizeXUnit="([^"]+)"', tf.ome_metadata)
                if m:
                    scale = {"nm": 1e-3, "mm": 1e3}.get(u.group(1) if u else "µm", 1.0)
                    return _positive(float(m.group(1)) * scale)
            m = re.search(r"\bMPP\s*=\s*([0-9.eE+-]+)", desc)
            if m:
                return _positive(float(m.group(1)))
            tags = page.tags
            if "XResolution" not in tags:
                return None
            num, den = tags["XResolution"].value
            if not num or not den:
                return None
            per_unit = num / den  # pixels per unit
            if tf.is_imagej and (tf.imagej_metadata or {}).get("unit") in ("micron", "um", "µm"):
                return _positive(1.0 / per_unit)
            unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2
            if int(unit) == 3:  # centimetre
                return _positive(1e4 / per_unit)
    except (ValueError, OSError, KeyError, TypeError, ZeroDivisionError):
        return None
    return None


def _positive(v: float) -> float | None:
    return v if 0 < v < 1e3 else None


class NoPixels(np.ndarray):
    """An image's ``(H, W)`` shape without its pixels (zero strides, no memory): what
    :func:`image_or_shape` gives when the pixels are not wanted. Readers use it where they
    need only the size; :class:`~cellbench.data.sample.Sample` never holds one."""


def image_or_shape(
    path: str | Path, pixels: bool = True, size: tuple[int, int] | None = None
) -> np.ndarray:
    """:func:`read_image`, or with ``pixels=False`` a :class:`NoPixels` of the image's
    ``(width, height)``: ``size`` when known, else read from its header (sizes are still
    checked; nothing is decoded)."""
    if pixels:
        return read_image(path)
    w, h = size or image_size(path)
    check_pixels(w, h, Path(path))
    return np.broadcast_to(np.zeros((), np.uint8), (h, w)).view(NoPixels)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file (TIFF through tifffile, others through Pillow).

    Returns ``(H, W, C)`` or ``(H, W)``; RGBA is reduced to RGB. Truncated or corrupt files raise
    :class:`DataError`.
    """
    p = Path(path)
    try:
        if p.suffix.lower() in _TIFF:
            import tifffile

            with tifffile.TiffFile(p) as tf:
                page = tf.pages[0]
                check_pixels(int(page.imagewidth), int(page.imagelength), p)
                n = int(np.prod(tf.series[0].shape)) if tf.series else 0
                if n > 4 * limits().max_pixels:
                    raise DataError(p, f"image declares {n} values, over 4 x CELLBENCH_MAX_PIXELS")
                arr = tf.asarray()
                axes = tf.series[0].axes if tf.series else ""
                arr = _channels_last(arr, axes, p)
        else:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None  # checked just below, against CELLBENCH_MAX_PIXELS
            with Image.open(p) as im:
                check_pixels(im.size[0], im.size[1], p)
                im.load()
                arr = np.asarray(im)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(p, f"unreadable or truncated image ({type(e).__name__}: {e})") from None
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3):
        raise DataError(p, f"expected a 2-D image, got an array of shape {arr.shape}")
    return arr


def _channels_last(arr: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """A TIFF series as ``(H, W)`` or ``(H, W, C)``: ImageJ and OME store channels first
    (``CYX``, ``SYX``); an axis of length 1 (``Z``, ``T``, ``Q``) is dropped."""
    if len(axes) != arr.ndim:
        return arr
    keep = [i for i, a in enumerate(axes) if not (arr.shape[i] == 1 and a not in "YX")]
    arr = arr.reshape([arr.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if arr.ndim == 3 and axes.endswith("YX") and axes[0] in "CS":
        return np.moveaxis(arr, 0, -1)
    if arr.ndim > 3 or (arr.ndim == 3 and not axes.startswith("YX")):
        raise DataError(path, f"a {axes} stack of shape {arr.shape}; one 2-D image expected")
    return arr


def as_label_image(arr: np.ndarray, path: str | Path) -> np.ndarray:
    """Check and convert an array to an ``int32`` instance map (0 = background).

    Raises :class:`DataError` for float labels with fractions, NaN, negative ids, or more than
    two dimensions.
    """
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(path, f"label image must be 2-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise DataError(path, "label image contains NaN")
        if not np.all(arr == np.round(arr)):
            raise DataError(path, "label image has non-integer (float) values")
    elif arr.dtype.kind not in "iub":
        raise DataError(path, f"label image has unsupported dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise DataError(path, "label image has negative ids")
    if arr.size and arr.max() > np.iinfo(np.int32).max:
        raise DataError(path, "label ids exceed int32")
    return arr.astype(np.int32, copy=False)


def read_label_array(path: str | Path) -> np.ndarray:
    """Read a label image from ``.npy``, ``.png`` or ``.tif`` as stored (dtype unchanged)."""
    p = Path(path)
    if p.suffix.lower() != ".npy":
        return read_image(p)
    try:
        # the header's shape is checked before any pixel is read (a small file may declare a
        # huge array); small files are then read at once, larger ones through a memory map
        fmt = np.lib.format
        with open(p, "rb") as f:
            version = fmt.read_magic(f)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
            shape = read_header[version](f)[0] if version in read_header else None
        if shape is not None and len(shape) >= 2:
            check_pixels(int(shape[1]), int(shape[0]), p)
        if shape is not None and p.stat().st_size <= _NPY_DIRECT_BYTES:
            return np.load(p, allow_pickle=False)
        arr = np.load(p, allow_pickle=False, mmap_mode="r")  # other versions: map, check
        if arr.ndim >= 2:
            check_pixels(int(arr.shape[1]), int(arr.shape[0]), p)
        return np.array(arr)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(p, f"unreadable .npy ({type(e).__name__}: {e})") from None


def read_label_image(path: str | Path) -> np.ndarray:
    """Read an instance map from ``.npy``, ``.png`` or ``.tif`` as ``(H, W) int32``."""
    return as_label_image(read_label_array(path), Path(path))


def check_same_size(image: np.ndarray, mask: np.ndarray, mask_path: str | Path) -> None:
    """Raise :class:`DataError` naming ``mask_path`` when mask and image sizes differ."""
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            mask_path,
            f"mask is {mask.shape[1]}x{mask.shape[0]} px but its image is "
            f"{image.shape[1]}x{image.shape[0]} px",
        )
