"""sha256 of files, computed once per file version and remembered across processes.

Runs are identified by the content of what they read (model weights, stored predictions), so
planning an evaluation of a folder of predictions hashes every file: ~60 ms for 224 CoNSeP
maps, each time the command runs. A file's hash is remembered under its resolved path, size,
modification and change times (ns) and inode, in this process and in the workspace
(``$CELLBENCH_HOME/cache/sha256.json``, written by :func:`save`); any change to the file
changes one of these, so a remembered hash is never stale. As git does against "racily clean"
files, a hash is only written to disk when the file was last modified over
:data:`SETTLED_S` seconds before it was read (a file rewritten within the clock's resolution
right after hashing keeps its times). The cache is an optimisation only: unreadable, corrupt
or unwritable, it is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

#: Seconds since its last modification after which a file's hash may be kept on disk.
SETTLED_S = 2.0
#: Most entries kept on disk (the most recently used).
MAX_ENTRIES = 200_000
#: A cache file larger than this is ignored (and rewritten by the next save).
MAX_CACHE_BYTES = 64 << 20

_memory: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_loaded_from: Path | None = None
_dirty = False


def _cache_file() -> Path:
    from cellbench.core import config

    return config.home() / "cache" / "sha256.json"


def _load() -> None:
    global _loaded_from
    path = _cache_file()
    if _loaded_from == path:
        return
    _loaded_from = path
    try:
        if path.stat().st_size > MAX_CACHE_BYTES:
            return
        raw = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # absent, unreadable, malformed, too nested
        return
    if not isinstance(raw, dict):
        return
    for k, entry in raw.items():
        ok = (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[1], str)
            and isinstance(entry[0], list)
            and len(entry[0]) == 4
            and all(isinstance(v, int) for v in entry[0])
        )
        if ok and k not in _memory:  # a malformed entry is skipped, the rest kept
            _memory[k] = (tuple(entry[0]), entry[1])


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (remembered per file version; module docstring).

    Raises
    ------
    OSError
        The file cannot be read (the caller names it in its own error).
    """
    global _dirty
    p = Path(path)
    st = p.stat()
    key = str(p.resolve())
    stamp = _stamp(st)
    _load()
    got = _memory.get(key)
    if got is not None and got[0] == stamp:
        return got[1]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if os.stat(p).st_mtime_ns == st.st_mtime_ns and time.time() - st.st_mtime > SETTLED_S:
        _memory[key] = (stamp, digest)
        _dirty = True
    return digest


def save() -> None:
    """Write the remembered hashes to the workspace (atomically; quietly not at all when the
    workspace is read-only). Call after hashing a batch of files."""
    global _dirty
    if not _dirty:
        return
    from cellbench.core.atomic import write_bytes_atomic

    _dirty = False
    entries = list(_memory.items())[-MAX_ENTRIES:]
    data = json.dumps({k: [list(s), d] for k, (s, d) in entries}, separators=(",", ":"))
    with contextlib.suppress(OSError):
        write_bytes_atomic(_cache_file(), data.encode())
