"""Limits and checks applied to every untrusted input before it is used.

Everything a user, a dataset or a downloaded file controls passes through here first: file sizes,
JSON nesting, YAML alias expansion, image pixel counts, polygon vertex counts, coordinates,
names used as file names, and paths (always literal, always inside their root). Each failure is
a :class:`~cellbench.core.errors.DataError` (or the error class the caller passes) naming the
file and the problem, raised before anything is written.

Limits are generous for real pathology data and configurable through environment variables:

=============================  ===========================  ========================================
variable                       default                      what
=============================  ===========================  ========================================
``CELLBENCH_MAX_PIXELS``       268435456 (16384²)           pixels of one image decoded whole
``CELLBENCH_MAX_FILE_MB``      1024                         size of one JSON/XML/YAML/ROI file
``CELLBENCH_MAX_VERTICES``     100000                       vertices of one polygon
``CELLBENCH_MAX_OBJECTS``      5000000                      objects (or images) in one file
``CELLBENCH_MAX_JSON_DEPTH``   64                           nesting of JSON arrays and objects
``CELLBENCH_MAX_YAML_NODES``   200000                       nodes of a YAML document, aliases
                                                            expanded
=============================  ===========================  ========================================

Coordinates are pixels of the image they belong to, ``x`` along columns.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache, wraps
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cellbench.core.errors import DataError


@dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring); read from the environment each time."""

    max_pixels: int = 2**28
    max_file_bytes: int = 1024 * 2**20
    max_vertices: int = 100_000
    max_objects: int = 5_000_000
    max_json_depth: int = 64
    max_yaml_nodes: int = 200_000


_ENV = {
    "max_pixels": ("CELLBENCH_MAX_PIXELS", 1),
    "max_file_bytes": ("CELLBENCH_MAX_FILE_MB", 2**20),
    "max_vertices": ("CELLBENCH_MAX_VERTICES", 1),
    "max_objects": ("CELLBENCH_MAX_OBJECTS", 1),
    "max_json_depth": ("CELLBENCH_MAX_JSON_DEPTH", 1),
    "max_yaml_nodes": ("CELLBENCH_MAX_YAML_NODES", 1),
}


def limits() -> Limits:
    """The limits, with any ``CELLBENCH_MAX_*`` environment variable applied."""
    vals: dict[str, int] = {}
    for field, (var, scale) in _ENV.items():
        raw = os.environ.get(var)
        if raw:
            try:
                vals[field] = int(float(raw) * scale)
            except ValueError:
                raise DataError(
                    Path(var), f"environment variable {var}={raw!r} is not a number"
                ) from None
    return Limits(**vals)


# -- files -----------------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def check_file_size(path: str | Path, what: str = "file") -> int:
    """The file's size in bytes; raises when missing or over ``max_file_bytes``."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except OSError as e:
        raise DataError(p, f"cannot read: {e.strerror or e}") from None
    lim = limits().max_file_bytes
    if size > lim:
        raise DataError(
            p, f"{what} is {_mb(size)}, over the {_mb(lim)} limit (CELLBENCH_MAX_FILE_MB)"
        )
    return size


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """A file's bytes after the size check."""
    p = Path(path)
    check_file_size(p, what)
    try:
        return p.read_bytes()
    except OSError as e:
        raise DataError(p, f"cannot read: {e.strerror or e}") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file after the size check."""
    p = Path(path)
    try:
        return read_bytes(p, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(p, f"not UTF-8 text (byte {e.start})") from None


def memoised_by_file(maxsize: int = 64):
    """Decorate ``fn(path)`` so that results are memoised per (path, modification time, size);
    a missing file raises :class:`DataError` ("file not found")."""

    def deco(fn):
        @lru_cache(maxsize=maxsize)
        def cached(p: Path, _mtime: int, _size: int):
            return fn(p)

        @wraps(fn)
        def wrapper(path: str | Path):
            p = Path(path)
            try:
                st = p.stat()
            except FileNotFoundError:
                raise DataError(p, "file not found") from None
            return cached(p, st.st_mtime_ns, st.st_size)

        return wrapper

    return deco


# -- JSON ------------------------------------------------------------------------------------


def check_depth(obj: Any, path: str | Path, max_depth: int | None = None) -> None:
    """Raise when lists/dicts nest deeper than ``max_depth`` (iterative: never recurses)."""
    lim = limits().max_json_depth if max_depth is None else max_depth
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            children = o.values()
        elif isinstance(o, list):
            children = o
        else:
            continue
        if d > lim:
            raise DataError(path, f"nested deeper than {lim} levels (CELLBENCH_MAX_JSON_DEPTH)")
        stack.extend((c, d + 1) for c in children if isinstance(c, dict | list))


def parse_json(
    text: str | bytes, path: str | Path, constants: bool = False, unique_keys: bool = False
) -> Any:
    """Parse JSON text from ``path``: malformed, too deep or non-standard input raises.

    ``NaN`` and ``Infinity`` (not JSON) are refused unless ``constants`` (QuPath writes them as
    measurement values; the caller then checks every number it uses); numbers stay as parsed.
    ``unique_keys``: a key given twice in one object raises (JSON keeps the last silently;
    QuPath legitimately writes ``metadata`` twice, so this is the caller's choice).
    """

    def no_constants(name: str):
        if constants:
            return float(name)
        raise ValueError(f"'{name}' is not a JSON value")

    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise DataError(path, "empty file")

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"key {dup!r:.60} appears twice in one object")
        return dict(items)

    try:
        doc = json.loads(
            text, parse_constant=no_constants, object_pairs_hook=pairs if unique_keys else None
        )
    except json.JSONDecodeError as e:
        raise DataError(
            path, f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise DataError(path, "malformed JSON: nested too deeply") from None
    except ValueError as e:
        raise DataError(path, f"malformed JSON: {e}") from None
    check_depth(doc, path)
    return doc


def read_json(
    path: str | Path, what: str = "JSON file", constants: bool = False, unique_keys: bool = False
) -> Any:
    """Load a JSON file with the size, nesting and syntax checks of :func:`parse_json`; a
    ``.gz`` file is decompressed first, its unpacked size under the same limit."""
    p = Path(path)
    data = read_bytes(p, what)
    if p.suffix.lower() == ".gz":
        data = gunzip(data, p, what)
    return parse_json(data, p, constants, unique_keys)


def gunzip(data: bytes, path: Path, what: str = "file") -> bytes:
    """Decompress gzip ``data`` of ``path``, refusing more than ``max_file_bytes`` unpacked."""
    import zlib

    lim = limits().max_file_bytes
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(data, lim + 1)
    except zlib.error as e:
        raise DataError(path, f"not a valid gzip file ({e})") from None
    if len(out) > lim or d.unconsumed_tail:
        raise DataError(
            path, f"{what} unpacks to over the {_mb(lim)} limit (CELLBENCH_MAX_FILE_MB)"
        )
    if not d.eof:
        raise DataError(path, "truncated gzip file")
    return out


# -- YAML ------------------------------------------------------------------------------------


def _expanded_size(obj: Any, path: Path, limit: int, error) -> int:
    """Nodes of ``obj`` counting every alias use in full (memoised on shared objects).

    Only what aliases *add* is limited: the expanded count less the document's own distinct
    nodes (a plain document is bounded by its file size; a 10,000-entry catalog without one
    alias is fine, a billion-laughs document of 1 KB is not)."""
    memo: dict[int, int] = {}
    active: set[int] = set()
    distinct = 0
    stack: list[tuple[Any, bool]] = [(obj, False)]
    while stack:
        o, done = stack.pop()
        if not isinstance(o, dict | list):
            continue
        k = id(o)
        if done:
            children = list(o.keys()) + list(o.values()) if isinstance(o, dict) else o
            memo[k] = 1 + sum(memo.get(id(c), 1) for c in children)
            distinct += 1 + sum(not isinstance(c, dict | list) for c in children)
            active.discard(k)
            if memo[k] - distinct > limit:
                raise error(
                    path,
                    f"YAML aliases expand it by more than {limit} nodes "
                    "(CELLBENCH_MAX_YAML_NODES); refused",
                )
            continue
        if k in memo:
            continue
        if k in active:
            raise error(path, "YAML refers to itself (recursive alias); refused")
        active.add(k)
        stack.append((o, True))
        children = list(o.values()) if isinstance(o, dict) else o
        stack.extend((c, False) for c in children if isinstance(c, dict | list))
    return memo.get(id(obj), 1)


_NOT_PLAIN = object()


def _plain_yaml(text: str) -> Any:
    """A YAML document without anchors, aliases, tags or merge keys, built straight from
    libyaml's events with PyYAML's own implicit resolvers and safe constructors (the same
    objects as ``yaml.safe_load``, ~4x faster: PyYAML's node graph is what costs). Returns
    :data:`_NOT_PLAIN` for anything else (the full loader then reads it); a key given twice
    in a mapping is an error as there."""
    import yaml
    from yaml import events as ev

    if not getattr(yaml, "__with_libyaml__", False):
        return _NOT_PLAIN
    resolvers = yaml.resolver.Resolver.yaml_implicit_resolvers
    ctor = yaml.constructor.SafeConstructor()
    build = {
        "tag:yaml.org,2002:int": ctor.construct_yaml_int,
        "tag:yaml.org,2002:float": ctor.construct_yaml_float,
        "tag:yaml.org,2002:bool": ctor.construct_yaml_bool,
        "tag:yaml.org,2002:null": ctor.construct_yaml_null,
    }

    memo: dict[str, Any] = {}  # plain scalars repeat (keys, class names): resolved once

    def scalar(e) -> Any:
        if e.tag is not None and e.tag != "!" or e.anchor is not None:
            raise _Fallback
        value = e.value
        if e.style not in (None, "") or not e.implicit[0]:
            return value  # quoted or block scalars are strings
        got = memo.get(value, memo)
        if got is not memo:
            return got  # immutable results only: str, int, float, bool, None
        got = value
        for tag, regexp in resolvers.get(value[:1] if value else "", []) + resolvers.get(None, []):
            if regexp.match(value):
                if tag not in build:
                    raise _Fallback  # timestamps, merge keys, values: the full loader
                got = build[tag](yaml.ScalarNode(tag, value))
                break
        memo[value] = got
        return got

    stack: list[Any] = []
    keys: list[Any] = []
    root: Any = _NOT_PLAIN
    try:
        scalar_t, map_t, seq_t = ev.ScalarEvent, ev.MappingStartEvent, ev.SequenceStartEvent
        ends = (ev.MappingEndEvent, ev.SequenceEndEvent)
        for e in yaml.parse(text, Loader=yaml.CSafeLoader):
            t = type(e)
            if t is scalar_t:
                item = scalar(e)
            elif t is map_t or t is seq_t:
                if e.anchor is not None or (e.tag is not None and not e.implicit):
                    raise _Fallback
                stack.append({} if t is map_t else [])
                keys.append(_NO_KEY)
                continue
            elif t in ends:
                item = stack.pop()
                keys.pop()
            elif t is ev.AliasEvent:
                raise _Fallback
            else:
                continue  # stream / document start and end
            if not stack:
                if root is not _NOT_PLAIN:
                    raise _Fallback  # several documents: the full loader says so
                root = item
                continue
            top = stack[-1]
            if isinstance(top, list):
                top.append(item)
            elif keys[-1] is _NO_KEY:
                if isinstance(item, (dict, list)):
                    raise _Fallback  # complex keys
                if item in top or item == "<<":
                    raise _Fallback  # duplicates and merges: the full loader's message
                keys[-1] = item
            else:
                top[keys[-1]] = item
                keys[-1] = _NO_KEY
    except _Fallback:
        return _NOT_PLAIN
    return None if root is _NOT_PLAIN else root


class _Fallback(Exception):
    pass


_NO_KEY = object()


@lru_cache(maxsize=1)
def _unique_key_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                except TypeError:
                    continue  # unhashable keys: yaml itself refuses them
                if dup:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r:.60} appears twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def load_yaml(text: str, path: str | Path, error=DataError) -> Any:
    """Safe-load YAML text, refusing alias bombs and recursive documents.

    ``error(path, problem)`` is raised (default :class:`DataError`); YAML syntax errors name the
    line and column.
    """
    import yaml

    p = Path(path)
    try:
        doc = _plain_yaml(text)
        plain = doc is not _NOT_PLAIN
        if not plain:
            # the C loader when libyaml is there (~10x faster), the same safe constructors; a
            # key given twice in one mapping is an error (PyYAML would keep the last silently)
            doc = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(p, f"malformed YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:
        raise error(p, "malformed YAML: nested too deeply") from None
    if not plain:  # without aliases a document is no larger than its text (file size limit)
        _expanded_size(doc, p, limits().max_yaml_nodes, error)
    return doc


# -- images ----------------------------------------------------------------------------------


def check_pixels(width: int, height: int, path: str | Path, channels: int = 1) -> None:
    """Raise when an image of ``width`` x ``height`` px is over ``max_pixels`` (or empty)."""
    lim = limits().max_pixels
    if width <= 0 or height <= 0:
        raise DataError(path, f"image declares {width}x{height} px")
    if width * height > lim:
        raise DataError(
            path,
            f"image declares {width}x{height} px ({width * height / 1e6:.0f} Mpx), over the "
            f"{lim / 1e6:.0f} Mpx limit for decoding a whole image (CELLBENCH_MAX_PIXELS)",
        )


# -- coordinates ------------------------------------------------------------------------------


def check_vertices(xy: np.ndarray, path: str | Path, where: str) -> np.ndarray:
    """Check one polygon's ``(K, 2)`` vertices: finite and at most ``max_vertices``."""
    lim = limits().max_vertices
    if len(xy) > lim:
        raise DataError(
            path, f"{where}: {len(xy)} vertices, over the {lim} limit (CELLBENCH_MAX_VERTICES)"
        )
    if not np.isfinite(xy).all():
        raise DataError(path, f"{where}: non-finite (NaN or infinite) coordinates")
    return xy


def check_count(n: int, path: str | Path, what: str) -> None:
    """Raise when a file holds more than ``max_objects`` objects (or images)."""
    lim = limits().max_objects
    if n > lim:
        raise DataError(path, f"{n} {what}, over the {lim} limit (CELLBENCH_MAX_OBJECTS)")


def check_placement(
    boxes: np.ndarray, width: int, height: int, path: str | Path, what: str = "objects"
) -> np.ndarray:
    """Check object bounding boxes ``(N, 4)`` = ``x0, y0, x1, y1`` against a ``width`` x
    ``height`` image.

    Objects that lie entirely outside the image, or reach further than one image size beyond
    its edges (a wrong image, an offset slide export, or coordinates such as ±1e9), raise naming
    the first one and the count. Objects partly over an edge are kept (they are clipped when
    rasterised). Returns the boxes.
    """
    if not len(boxes):
        return boxes
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        i = int(np.flatnonzero(~np.isfinite(b).all(axis=1))[0])
        raise DataError(path, f"{what}[{i}]: non-finite (NaN or infinite) coordinates")
    far = (b[:, 0] < -width) | (b[:, 1] < -height) | (b[:, 2] > 2 * width) | (b[:, 3] > 2 * height)
    out = (b[:, 2] < 0) | (b[:, 3] < 0) | (b[:, 0] >= width) | (b[:, 1] >= height)
    for mask, how in ((far, "reaches far beyond"), (out, "lies entirely outside")):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            x0, y0, x1, y1 = b[i]
            raise DataError(
                path,
                f"{what}[{i}] (x {x0:g}..{x1:g}, y {y0:g}..{y1:g}) {how} the {width}x{height} px "
                f"image ({int(mask.sum())} such objects); is it the right image?",
            )
    return b


def check_polygons_inside(
    polygons: list[np.ndarray], width: int, height: int, path: str | Path, what: str = "objects"
) -> None:
    """:func:`check_placement` of ``(K, 2)`` polygons by their bounding boxes."""
    boxes = np.array([bbox(xy) for xy in polygons], dtype=np.float64).reshape(-1, 4)
    check_placement(boxes, width, height, path, what)


def bbox(xy: np.ndarray) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of ``(K, 2)`` vertices."""
    return (
        float(xy[:, 0].min()),
        float(xy[:, 1].min()),
        float(xy[:, 0].max()),
        float(xy[:, 1].max()),
    )


def is_number(v: Any) -> bool:
    """True for a real int or float (``bool`` and strings are not numbers here)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def finite_number(v: Any) -> bool:
    """True for an int or finite float that is not a bool."""
    return is_number(v) and math.isfinite(v)


# -- names and paths ---------------------------------------------------------------------------

#: Ids used as file or folder names (runs, jobs, test sets, models): no separators, no dots first.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@,\-]{0,199}$")


def check_name(value: Any, kind: str, error=None) -> str:
    """Return ``value`` when it is a safe id (:data:`NAME_RE`); raise ``KeyError``-style otherwise.

    ``error`` is an exception class taking a message (default :class:`ValueError`).
    """
    if not isinstance(value, str) or not NAME_RE.match(value) or ".." in value:
        exc = error or ValueError
        raise exc(
            f"invalid {kind} {value!r}: use letters, digits and . _ + = @ , - (no path separators)"
        )
    return value


def check_relative(pattern: Any, where: str | Path, what: str = "path") -> str:
    """Return ``pattern`` when it is a relative path inside its root (no ``..``, not absolute)."""
    if not isinstance(pattern, str) or not pattern:
        raise DataError(where, f"{what} must be a non-empty string, got {pattern!r}")
    norm = pattern.replace("\\", "/")
    pp = PurePosixPath(norm)
    if norm.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", norm) or ".." in pp.parts:
        raise DataError(
            where, f"{what} {pattern!r} must stay inside its folder (relative, no '..')"
        )
    return pattern


def confine(root: Path, rel: str, where: str | Path, what: str = "path") -> Path:
    """``root / rel`` after :func:`check_relative`: a literal path that stays inside ``root``."""
    return root / check_relative(rel, where, what)


def confined_glob(root: Path, pattern: str, where: str | Path, what: str = "pattern") -> list[Path]:
    """Sorted matches of a glob ``pattern`` under ``root``; the pattern may not leave ``root``."""
    check_relative(pattern, where, what)
    base = os.path.normpath(root)
    out = []
    for p in root.glob(pattern):
        if os.path.commonpath([base, os.path.normpath(p)]) == base:
            out.append(p)
    return sorted(out)


def literal_matches(folder: Path, stem: str) -> list[Path]:
    """Files in ``folder`` whose stem is exactly ``stem`` (never a pattern)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.stem == stem)
