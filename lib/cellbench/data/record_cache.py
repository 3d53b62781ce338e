"""A persistent cache of each dataset's sample records (listing, metadata, object counts).

Listing a dataset means reading every annotation file once (object counts, image sizes): 0.1 to
4 s per dataset on the shared data, ~10 s for the whole catalog. The records depend only on the
catalog entry, the files under the dataset's location and the reader code, so they are kept in
``$CELLBENCH_HOME/cache/records/<dataset>-<fingerprint>.json`` and reused while that fingerprint
holds:

- the catalog entry (every field, reader options included) and the resolved location;
- every file under the location: relative path, size in bytes and modification time (ns);
- the source of the data-reading code (``cellbench.data`` and ``cellbench.core.safety``), so a
  changed reader never serves stale records;
- the safety limits in force (they decide what a reader accepts).

Computing the fingerprint walks the dataset folder (~30 ms for the shared data). A cache file
that cannot be read is ignored and rewritten; one that cannot be written (read-only home) only
costs the time to list again. The cache holds no pixels and no annotations, only what
:class:`~cellbench.data.readers.base.SampleRecord` carries.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic
from cellbench.core.safety import NAME_RE, limits
from cellbench.data.sample import SampleRecord

#: Bump when the cache file layout changes.
FORMAT = 1

_memory: dict[str, list[SampleRecord]] = {}


@cache
def _code_hash() -> str:
    """sha256 of the data-reading code (every module under ``cellbench.data`` and safety)."""
    pkg = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    code = [*(pkg / "data").rglob("*.py"), pkg / "core" / "safety.py"]
    for p in sorted([*code, pkg / "resources" / "tcga_tss.tsv"]):
        h.update(p.relative_to(pkg).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _listing(location: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file under ``location`` (or of the file)."""
    if location.is_file():
        st = location.stat()
        return [(location.name, st.st_size, st.st_mtime_ns)]
    out = []
    for root, dirs, files in os.walk(location):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            out.append((os.path.relpath(p, location), st.st_size, st.st_mtime_ns))
    return out


def fingerprint(dataset, location: Path) -> str:
    """What the records of a catalog entry read from ``location`` depend on, hashed (see the
    module docstring)."""
    h = hashlib.sha256()
    parts = [
        FORMAT,
        _code_hash(),
        dataset.model_dump_json(),
        str(location),
        repr(limits()),
        _listing(location),
    ]
    h.update(json.dumps(parts, default=str).encode())
    return h.hexdigest()[:20]


def _encode(recs: list[SampleRecord]) -> bytes:
    rows = [
        {
            "sample_id": r.sample_id,
            "split": r.split,
            "meta": r.meta,
            "files": {k: str(v) for k, v in r.files.items()},
            "extra": r.extra,
        }
        for r in recs
    ]
    return json.dumps({"format": FORMAT, "records": rows}, default=_plain).encode()


def _plain(x):
    """numpy scalars and paths in metadata as plain JSON values."""
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def _decode(data: bytes) -> list[SampleRecord]:
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        raise ValueError("other cache format")
    return [
        SampleRecord(
            r["sample_id"],
            r["split"],
            dict(r["meta"]),
            {k: Path(v) for k, v in r["files"].items()},
            dict(r["extra"]),
        )
        for r in doc["records"]
    ]


def cache_dir() -> Path:
    return config.home() / "cache" / "records"


def records_of(reader) -> list[SampleRecord]:
    """``reader.records()``, served from the process memory or the disk cache when the dataset,
    its files and the reader code are unchanged (module docstring); computed and stored
    otherwise. Errors of the reader propagate and nothing is cached for them."""
    return _cached(reader.dataset, reader.location, lambda: reader)


def cached_records(catalog, dataset_id: str) -> list[SampleRecord]:
    """The records of a catalog dataset like :func:`records_of`, without importing the readers
    (and their image libraries) when the cache answers."""
    d = catalog.get(dataset_id)
    loc = catalog.location(d)

    def reader():
        from cellbench.data.readers import get_reader

        return get_reader(catalog, dataset_id)

    if loc is None or not loc.exists():
        return reader().records()  # raises the reader's own "not found" error
    return _cached(d, loc, reader)


def peek(catalog, dataset_id: str) -> list[SampleRecord] | None:
    """The records of a catalog dataset when the memory or disk cache holds them, else None
    (nothing is listed: e.g. a page that must answer at once while the listing runs in the
    background, :mod:`cellbench.data.listing`)."""
    d = catalog.get(dataset_id)
    loc = catalog.location(d)
    if loc is None or not loc.exists():
        return None
    return _lookup(d, loc)[0]


def _lookup(dataset, location: Path) -> tuple[list[SampleRecord] | None, str, Path | None]:
    """(the cached records or None, the memory key, the disk file or None)."""
    key = f"{dataset.id}-{fingerprint(dataset, location)}"
    if key in _memory:
        return list(_memory[key]), key, None
    path = cache_dir() / f"{key}.json" if NAME_RE.match(dataset.id) else None
    if path is not None and path.is_file():
        try:
            recs = _decode(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None, key, path  # damaged or foreign: list again and overwrite
        _memory[key] = recs
        return list(recs), key, path
    return None, key, path


def _cached(dataset, location: Path, reader) -> list[SampleRecord]:
    recs, key, path = _lookup(dataset, location)
    if recs is not None:
        return recs
    recs = [_standard(r) for r in reader().records()]
    if path is not None:
        _store(path, recs, dataset.id)
    _memory[key] = recs
    return list(recs)


def _standard(rec: SampleRecord) -> SampleRecord:
    """The record with its metadata in the shared vocabulary (organ names, TCGA centers)."""
    from cellbench.data.vocabulary import standardise

    rec.meta = standardise(rec.meta)
    return rec


def _store(path: Path, recs: list[SampleRecord], dataset_id: str) -> None:
    try:
        write_bytes_atomic(path, _encode(recs))
        for old in path.parent.glob(f"{dataset_id}-*.json"):
            if old != path and old.name[len(dataset_id) + 1 :].count("-") == 0:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full home only costs the listing time next time
