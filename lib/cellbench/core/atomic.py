"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask, read once at import (``os.umask`` can only be read by setting it).
_UMASK = _umask()


@contextlib.contextmanager
def open_atomic(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: a temporary file next to it, fsynced and
    renamed over ``path`` when the block ends, removed if it raises (for writers that stream,
    e.g. a whole-slide TIFF larger than memory).

    The file gets the usual mode for new files (``0o666`` less the umask), not the ``0o600``
    of a temporary file, so that a shared store stays readable by the group.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
        with open(tmp, "wb") as f:  # opened by name: writers such as tifffile want f.name
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file next to ``path``, fsync it, then rename over it
    (:func:`open_atomic`)."""
    with open_atomic(path) as f:
        f.write(data)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Serialise ``obj`` as JSON (NaN refused: use None) and write it atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False)
    return write_bytes_atomic(path, text.encode("utf-8"))
