"""Where stored predictions come from: finding the files of a folder, pairing them with
ground-truth stems, hashing their content, reading them through the format registry.

Pairing: a file pairs with the stem its format's ending leaves (``img1_seg.npy`` -> ``img1``,
``img1.geojson.gz`` -> ``img1``), or, with a ``pattern`` such as ``"{stem}_label.png"``, with
the ``{stem}`` part of the names that match it. Class maps (``<stem>_class.<ext>``) and
ambiguous-region masks (``<stem>_ambiguous.<ext>``) are read with their instance map, never
listed. Entries that cannot be predictions (folders, FIFOs, devices, dangling links, unknown
endings) are kept in ``skipped`` with the reason, so a missing stem can be explained.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.hashing import sha256_file
from cellbench.data.predictions.base import FORMATS, known_endings, split_name
from cellbench.data.predictions.maps import COMPANIONS


def _pattern_regex(pattern: str, where: Path) -> re.Pattern:
    if pattern.count("{stem}") != 1 or "/" in pattern or "\\" in pattern:
        raise DataError(where, f"pattern {pattern!r} must hold '{{stem}}' once and no folder")
    head, tail = pattern.split("{stem}")
    return re.compile(re.escape(head) + "(?P<stem>.+?)" + re.escape(tail) + r"\Z")


def _why_not_a_file(p: Path) -> str | None:
    try:
        st = p.stat()
    except FileNotFoundError:
        return "a dangling link"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


class PredictionFiles(dict):
    """``{stem: path}`` of a folder's prediction files; ``skipped``: ``{name: reason}``."""

    def __init__(self, folder: Path, files: dict[str, Path], skipped: dict[str, str]):
        super().__init__(files)
        self.folder = folder
        self.skipped = skipped

    def explain(self, stem: str) -> str:
        """Why no file pairs with ``stem`` (the skipped entries that start with it)."""
        near = [f"{n} ({r})" for n, r in self.skipped.items() if n.startswith(stem)]
        return f"; skipped: {', '.join(near[:3])}" if near else ""

    def missing(self, stems) -> None:
        """Raise naming the folder when any of ``stems`` has no file, with the reasons known."""
        stems = list(stems)
        miss = [s for s in stems if s not in self]
        if miss:
            why = "".join(self.explain(s) for s in miss[:3])
            raise DataError(
                self.folder,
                f"no prediction for {len(miss)} of {len(stems)} images: {', '.join(miss[:5])}"
                + (" ..." if len(miss) > 5 else "")
                + why,
            )


def prediction_files(folder: str | Path, pattern: str | None = None) -> PredictionFiles:
    """The prediction files of ``folder`` by stem (module docstring). Two files for one stem,
    or none at all, raise naming the folder."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(d, "not a folder")
    rx = _pattern_regex(pattern, d) if pattern else None
    out: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for f in sorted(d.iterdir()):
        if rx is not None:
            m = rx.match(f.name)
            if m is None:
                continue
            stem, fmt = m.group("stem"), split_name(f)
            if fmt is None:
                skipped[f.name] = f"no format reads it (known: {known_endings()})"
                continue
        else:
            found = split_name(f)
            if found is None:
                skipped[f.name] = "no format reads this ending"
                continue
            stem = found[0]
            if found[1].name == "label-map" and stem.endswith(COMPANIONS):
                continue  # a class map or ambiguous mask, read with its instance map
        why = _why_not_a_file(f)
        if why is not None:
            skipped[f.name] = why
            continue
        if stem in out:
            raise DataError(f, f"two prediction files for '{stem}' ({out[stem].name})")
        out[stem] = f
    if not out:
        what = f"matching {pattern!r}" if pattern else f"({known_endings()})"
        extra = f"; skipped: {', '.join(list(skipped)[:3])}" if skipped else ""
        raise DataError(d, f"no prediction files {what}{extra}")
    return PredictionFiles(d, out, skipped)


def read_prediction(path: str | Path, shape=None, class_id=None, **options):
    """Read one prediction file by its format (``options``: the format's own, e.g. a GeoJSON
    ``layout``, a slide ``origin``). ``shape`` ``(H, W)`` is the image's: needed by formats
    without a size, checked for the others; ``class_id(name)`` maps class names to dataset
    class ids (None ignores names)."""
    from cellbench.data.predictions.base import finish

    p = Path(path)
    found = split_name(p)
    if found is None:
        raise DataError(p, f"unsupported prediction file (known: {known_endings()})")
    return finish(found[1].read(p, shape, class_id, **options), p, shape)


def _with_companions(path: Path) -> list[Path]:
    found = split_name(path)
    return [path, *(found[1].companions(path) if found else [])]


def prediction_hash(path: Path) -> str:
    """sha256 of a prediction file, with the files read with it (a class map)."""
    return "+".join(sha256_file(p) for p in _with_companions(path))


def prediction_stat(path: Path) -> tuple:
    """Size and modification time of a prediction file and its companions: unchanged since
    a run was planned means its hash need not be computed again."""
    out = []
    for p in _with_companions(path):
        st = p.stat()
        out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)


def formats_table() -> list[dict[str, str]]:
    """One row per registered format: name, endings, tool and layout."""
    return [
        {"format": f.name, "endings": ", ".join(f.endings), "source": f.source}
        for f in FORMATS.values()
    ]
