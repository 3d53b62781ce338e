"""The metrics store: long-format metric rows (parquet) and a runs table with provenance.

Layout under ``$CELLBENCH_HOME/store`` (``shared/DESIGN.md`` §3):

``runs/<run_id>.json``
    One file per run: what was evaluated (model, its sha256, dataset, split, preset,
    parameters), provenance (catalog version, code version, host), timestamps, ``status``
    (``running``, ``complete``, ``failed``, ``cancelled``; a ``running`` run whose process is
    gone reads as ``interrupted``) and progress (``n_done`` of ``n_samples``).
``metrics/<run_id>/part-<ns>-<pid>.parquet``
    Sample rows, :data:`SCHEMA`. A part is written to a temporary file and renamed, so it is
    there whole or not at all, and holds every row of the samples it covers: a killed
    evaluation leaves no half-written sample. Sample parts are only ever added, never rewritten.
    ``part-*.json`` next to it keeps the same samples' full per-image results, from which the
    dataset-level figures of the run's preset are computed (pooled counts need them).
``metrics/<run_id>/part-dataset.parquet``
    The dataset-level rows, written when the run completes under a fixed name (atomically
    replaced), so that whatever the crash point they are stored exactly once.
``metrics/<run_id>/merged-<ns>-<pid>.parquet`` (+ ``.json``) and ``compact.json``
    A run's sample parts compacted into one (when it completes, and when it resumes, so that
    queries and resumes read one file instead of thousands). The merged part is written first
    under a name readers ignore; the manifest ``compact.json`` (naming the merged part and the
    parts it replaces) is then replaced atomically, which is the switch: from that instant
    readers use the merged part and skip the replaced ones, which are deleted afterwards. A
    crash at any point leaves either the old parts or the merged one in use, never both;
    leftovers are removed by the next write to the run or by ``store check --repair``.
``quarantine/<time>/...``
    Files that ``cellbench store check --repair`` moved out of the way (unreadable run records,
    corrupted parts), kept for inspection.
``locks/<run_id>.lock``
    Held (``flock``) by the process evaluating the run, so two processes never write the same
    run; different runs write different folders and never interleave.

Failures are reported, never half-applied: a write that fails (disk full, read-only store)
raises :class:`StoreWriteError` naming the file, after which the same command resumes; an
unreadable run record is left out of listings (:attr:`Store.problems`) and a run with a
corrupted part reads as status ``damaged`` (left out of comparisons; its rows raise naming the
part) until ``cellbench store check --repair`` quarantines it.

Rows have ``level`` = ``sample`` (one image) or ``dataset`` (the preset's dataset figure,
written once when the run completes). ``class`` is a class name of the test dataset or
``all``. Values are float64; a metric that is undefined for a sample (e.g. the empty-image
policy) is null.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic, write_json_atomic
from cellbench.core.errors import CellbenchError, DataError
from cellbench.core.safety import check_name, parse_json, read_bytes

SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.Utf8,
    "model_id": pl.Utf8,
    "train_datasets": pl.Utf8,
    "test_dataset": pl.Utf8,
    "split": pl.Utf8,
    "level": pl.Utf8,
    "sample_id": pl.Utf8,
    "center": pl.Utf8,
    "organ": pl.Utf8,
    "stain": pl.Utf8,
    "category": pl.Utf8,
    "slide_id": pl.Utf8,
    "patient_id": pl.Utf8,
    "class": pl.Utf8,
    "metric": pl.Utf8,
    "value": pl.Float64,
}
#: The columns of the runs table shown in listings (CLI and app), in order.
RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "status",
    "model_id",
    "test_dataset",
    "split",
    "preset",
    "n_done",
    "n_samples",
    "finished",
)
#: Sample metadata columns copied onto each metric row (the grouping keys).
GROUP_KEYS: tuple[str, ...] = ("center", "organ", "stain", "category", "slide_id", "patient_id")


#: File name of a run's dataset-level rows (see the module docstring).
DATASET_PART = "part-dataset.parquet"
#: The compaction manifest of a run folder (see the module docstring).
COMPACT_MANIFEST = "compact.json"


def folder_parts(d: Path, ext: str = "parquet") -> tuple[list[Path], list[Path]]:
    """``(live parts, leftovers)`` of a run folder: the parts readers use (the merged part of
    the compaction manifest, then the sample parts it does not replace) and the files a
    compaction superseded or left unfinished (to delete)."""
    if not d.is_dir():
        return [], []
    parts = sorted(d.glob(f"part-*.{ext}"))
    merged_all = sorted(d.glob(f"merged-*.{ext}"))
    m = d / COMPACT_MANIFEST
    if not m.is_file():
        return parts, merged_all
    doc = parse_json(read_bytes(m, "compaction manifest"), m)
    if not (
        isinstance(doc, dict)
        and isinstance(doc.get("part"), str)
        and isinstance(doc.get("replaces"), list)
    ):
        raise DataError(m, "compaction manifest needs 'part' and 'replaces'")
    replaced = {str(x) for x in doc["replaces"]}
    merged = d / f"{doc['part']}.{ext}"
    live = ([merged] if merged.is_file() else []) + [p for p in parts if p.stem not in replaced]
    leftovers = [p for p in parts if p.stem in replaced] + [x for x in merged_all if x != merged]
    return live, leftovers


class RunBusyError(CellbenchError):
    """Another process is evaluating this run."""


class StoreWriteError(DataError):
    """Writing to the store failed (disk full, read-only, permissions); nothing half-written."""


@contextlib.contextmanager
def writing(path: Path):
    """Turn an ``OSError`` while writing ``path`` into one clear :class:`StoreWriteError`."""
    try:
        yield
    except OSError as e:
        raise StoreWriteError(
            getattr(e, "filename", None) or path,
            f"cannot write to the store ({e.strerror or e}); nothing was half-written: free "
            "space or fix permissions, then run the same command again to resume",
        ) from None


@lru_cache(maxsize=8192)
def _footer_problem(path: str, _mtime: int, _size: int) -> str | None:
    try:
        names = set(pl.read_parquet_schema(path))
    except Exception as e:  # noqa: BLE001 - any failure to read the footer is damage
        return f"corrupted metrics part ({type(e).__name__}: {str(e)[:120]})"
    missing = set(SCHEMA) - names
    return f"metrics part lacks columns {sorted(missing)}" if missing else None


def part_problem(path: Path) -> str | None:
    """Why a parquet part cannot be read (footer and columns; memoised), or None."""
    try:
        st = path.stat()
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return _footer_problem(str(path), st.st_mtime_ns, st.st_size)


class Store:
    """A metrics store rooted at ``root`` (default ``$CELLBENCH_HOME/store``).

    ``reference`` is a read-only store laid out the same way whose runs are listed and queried
    with this one's (never written): by default, for the workspace store, the reference results
    committed with cellbench (``results/reference`` in the checkout, or
    ``$CELLBENCH_REFERENCE``; set it empty to leave them out). A run in both is read from
    ``root``.
    """

    def __init__(self, root: str | Path | None = None, reference: str | Path | None = None):
        #: Problems met by the last :meth:`runs` (unreadable run records), each naming its file.
        self.problems: list[DataError] = []
        if root is None:
            self.root = config.home() / "store"
            if reference is None:
                reference = config.reference_store()
        else:
            self.root = Path(root)
        self.reference = Path(reference) if reference else None
        self.runs_dir = self.root / "runs"
        self.metrics_dir = self.root / "metrics"
        self.locks_dir = self.root / "locks"

    def roots(self) -> list[Path]:
        """Where runs are read from: this store, then the reference store if there is one."""
        out = [self.root]
        if self.reference is not None and self.reference.is_dir():
            out.append(self.reference)
        return out

    def _read_root(self, run_id: str) -> Path:
        check_name(run_id, "run id", KeyError)
        for r in self.roots():
            if (r / "runs" / f"{run_id}.json").is_file() or (r / "metrics" / run_id).is_dir():
                return r
        return self.root

    # -- runs -------------------------------------------------------------------------------

    def run_path(self, run_id: str) -> Path:
        check_name(run_id, "run id", KeyError)
        return self.runs_dir / f"{run_id}.json"

    def write_run(self, info: Mapping[str, Any]) -> None:
        """Write (replace) a run's record atomically."""
        path = self.run_path(info["run_id"])
        with writing(path):
            write_json_atomic(path, dict(info))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run's record, with ``status`` = ``interrupted`` when its process has died and
        ``damaged`` (with ``problem``) when one of its parts is corrupted."""
        check_name(run_id, "run id", KeyError)
        root = self._read_root(run_id)
        p = root / "runs" / f"{run_id}.json"
        if not p.is_file():
            raise KeyError(f"no run '{run_id}' in the store at {self.root}")
        info = parse_json(read_bytes(p, "run record"), p)
        if not isinstance(info, dict) or info.get("run_id") != run_id:
            raise DataError(p, "not a run record (a mapping whose run_id is the file name)")
        info["reference"] = root != self.root
        bad = self.bad_parts(run_id)
        if bad:
            info["status"] = "damaged"
            info["problem"] = f"{bad[0][0]}: {bad[0][1]} ({len(bad)} bad part(s))"
        elif info.get("status") == "running" and not self.is_locked(run_id):
            info["status"] = "interrupted"
        return info

    def run_ids(self) -> list[str]:
        """Ids of every run (this store's and the reference store's)."""
        ids = {p.stem for r in self.roots() for p in (r / "runs").glob("*.json")}
        return sorted(i for i in ids if _is_name(i))

    def runs(self) -> pl.DataFrame:
        """The runs table: one row per run, newest first.

        Unreadable run records are left out and listed in :attr:`problems`.
        """
        rows = []
        self.problems = []
        for r in self.run_ids():
            try:
                rows.append(self.get_run(r))
            except DataError as e:
                self.problems.append(e)
        if not rows:
            return pl.DataFrame(schema={"run_id": pl.Utf8, "status": pl.Utf8, "created": pl.Utf8})
        flat = [
            {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()}
            for r in rows
        ]
        return pl.DataFrame(flat, infer_schema_length=None).sort("created", descending=True)

    # -- locking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, run_id: str):
        """Hold the run's lock for the duration (``RunBusyError`` if another process has it)."""
        from cellbench.core.locks import held

        check_name(run_id, "run id", KeyError)
        path = self.locks_dir / f"{run_id}.lock"
        with writing(path):
            self.locks_dir.mkdir(parents=True, exist_ok=True)
            path.touch()
        with held(
            path, 0.0, lambda owner: RunBusyError(f"run '{run_id}' is being evaluated by {owner}")
        ):
            yield

    def is_locked(self, run_id: str) -> bool:
        import fcntl

        path = self.locks_dir / f"{run_id}.lock"
        if not path.exists():
            return False
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    # -- rows -------------------------------------------------------------------------------

    def _parts(self, run_id: str, ext: str = "parquet") -> list[Path]:
        return folder_parts(self._read_root(run_id) / "metrics" / run_id, ext)[0]

    def compact(self, run_id: str) -> Path | None:
        """Merge a run's sample parts into one (see the module docstring); the caller holds
        the run's lock. Returns the merged part, or None when there was nothing to merge."""
        d = self.metrics_dir / check_name(run_id, "run id", KeyError)
        self._drop_leftovers(d)
        live = [p for p in self.good_parts(run_id) if p.name != DATASET_PART]
        if len(live) <= 1:
            return None
        stem = f"merged-{time.time_ns():020d}-{os.getpid()}"
        results: dict[str, Any] = {}
        for p in live:
            j = p.with_suffix(".json")
            if j.is_file():
                results.update(parse_json(read_bytes(j, "results part"), j))
        m = d / COMPACT_MANIFEST
        old = parse_json(read_bytes(m, "compaction manifest"), m) if m.is_file() else {}
        with writing(d / f"{stem}.parquet"):
            if results:
                write_json_atomic(d / f"{stem}.json", results, indent=None)
            buf = io.BytesIO()
            pl.read_parquet(live, schema=SCHEMA).write_parquet(
                buf, compression="zstd", statistics=True
            )
            merged = write_bytes_atomic(d / f"{stem}.parquet", buf.getvalue())
            replaces = sorted({*old.get("replaces", []), *(p.stem for p in live)})
            write_json_atomic(m, {"part": stem, "replaces": replaces}, indent=None)  # the switch
        self._drop_leftovers(d)
        return merged

    def _drop_leftovers(self, d: Path) -> None:
        with writing(d):
            for ext in ("parquet", "json"):
                for p in folder_parts(d, ext)[1]:
                    p.unlink(missing_ok=True)

    def bad_parts(self, run_id: str) -> list[tuple[Path, str]]:
        """``(part, problem)`` for each of a run's parquet parts whose footer is unreadable."""
        out = []
        for p in self._parts(run_id):
            problem = part_problem(p)
            if problem:
                out.append((p, problem))
        return out

    def good_parts(self, run_id: str) -> list[Path]:
        """A run's parts; a corrupted one raises naming it (see ``cellbench store check``)."""
        bad = self.bad_parts(run_id)
        if bad:
            raise DataError(
                bad[0][0], f"{bad[0][1]}; run `cellbench store check --repair` to quarantine it"
            )
        return self._parts(run_id)

    def append(
        self,
        run_id: str,
        rows: Iterable[Mapping[str, Any]] | pl.DataFrame,
        results: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """Add sample rows (and their per-sample full results) to a run as one new part.

        The JSON of ``results`` is written first, then the parquet part; the part's presence
        is what commits the samples.
        """
        df = self._check_rows(run_id, rows)
        if df is None:
            return None
        stem = f"part-{time.time_ns():020d}-{os.getpid()}"
        d = self.metrics_dir / check_name(run_id, "run id", KeyError)
        with writing(d / f"{stem}.parquet"):
            if results:
                write_json_atomic(d / f"{stem}.json", dict(results), indent=None)
            buf = io.BytesIO()
            df.write_parquet(buf, compression="zstd", statistics=True)
            return write_bytes_atomic(d / f"{stem}.parquet", buf.getvalue())

    def _check_rows(self, run_id, rows) -> pl.DataFrame | None:
        df = rows if isinstance(rows, pl.DataFrame) else frame(rows)
        if df.is_empty():
            return None
        bad = set(df.get_column("run_id").unique().to_list()) - {run_id}
        if bad:
            raise ValueError(f"rows of run(s) {sorted(bad)} cannot be added to run '{run_id}'")
        return df

    def set_dataset_rows(self, run_id: str, rows) -> Path | None:
        """Store a run's dataset-level rows exactly once: :data:`DATASET_PART`, replaced
        atomically (idempotent whatever the crash point). Runs stored before that file existed
        keep their dataset rows in an ordinary part; then nothing is written."""
        df = self._check_rows(run_id, rows)
        if df is None:
            return None
        path = self.metrics_dir / check_name(run_id, "run id", KeyError) / DATASET_PART
        legacy = [p for p in self.good_parts(run_id) if p.name != DATASET_PART]
        if legacy and not (
            pl.scan_parquet(legacy)
            .filter(pl.col("level") == "dataset")
            .head(1)
            .collect()
            .is_empty()
        ):
            return None
        with writing(path):
            buf = io.BytesIO()
            df.write_parquet(buf, compression="zstd", statistics=True)
            return write_bytes_atomic(path, buf.getvalue())

    def done_samples(self, run_id: str) -> set[str]:
        """Sample ids with stored rows in a run (committed parts only)."""
        parts = self.good_parts(run_id)
        if not parts:
            return set()
        ids = (
            pl.scan_parquet(parts)
            .filter(pl.col("level") == "sample")
            .select(pl.col("sample_id").unique())
            .collect()
        )
        return set(ids.get_column("sample_id").to_list())

    def results(self, run_id: str) -> dict[str, Any]:
        """The full per-image results of a run's committed parts, ``{sample_id: dict}``."""
        out: dict[str, Any] = {}
        for p in self.good_parts(run_id):
            j = p.with_suffix(".json")
            if j.is_file():
                doc = parse_json(read_bytes(j, "results part"), j)
                if not isinstance(doc, dict):
                    raise DataError(j, "results part must map sample ids to results")
                out.update(doc)
        return out

    def clean_temporary(self, run_id: str) -> int:
        """Remove temporary files a killed writer left in a run's folder; return how many."""
        d = self.metrics_dir / run_id
        stale = list(d.glob(".*.tmp")) if d.is_dir() else []
        committed = {p.stem for p in self._parts(run_id)}
        stale += [j for j in self._parts(run_id, "json") if j.stem not in committed]
        stale += [p for ext in ("parquet", "json") for p in folder_parts(d, ext)[1]]
        with writing(d):
            for p in stale:
                p.unlink(missing_ok=True)
        return len(stale)

    def scan(self, run_ids: Iterable[str] | None = None) -> pl.LazyFrame:
        """All metric rows (of the given runs) as a lazy frame with :data:`SCHEMA`.

        Without ``run_ids``, runs with a corrupted part are left out; a named run with one
        raises naming the part.
        """
        if run_ids is None:
            ids = sorted(
                {p.name for r in self.roots() for p in (r / "metrics").glob("*") if p.is_dir()}
            )
            ids = [i for i in ids if _is_name(i) and not self.bad_parts(i)]
        else:
            ids = list(run_ids)
        parts = [p for r in ids for p in self.good_parts(r)]
        if not parts:
            return pl.LazyFrame(schema=SCHEMA)
        from cellbench.data.vocabulary import ORGAN_ALIASES

        # rows stored before the shared vocabulary read in it too
        organ = pl.col("organ").str.to_lowercase().str.replace_all(r"[\s_\-]+", " ")
        return pl.scan_parquet(parts, schema=SCHEMA).with_columns(
            organ=organ.replace(ORGAN_ALIASES)
        )

    def delete_run(self, run_id: str) -> None:
        """Remove a run, its rows and its kept predictions (refused while it is being evaluated)."""
        import shutil

        from cellbench.runs import predcache

        with self.lock(run_id):
            shutil.rmtree(self.metrics_dir / run_id, ignore_errors=True)
            self.run_path(run_id).unlink(missing_ok=True)
            predcache.drop(run_id)  # its kept predictions go with it


def _is_name(value: str) -> bool:
    try:
        check_name(value, "run id")
    except ValueError:
        return False
    return True


def frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Metric rows as a frame with :data:`SCHEMA` (missing columns null)."""
    rows = list(rows)
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in SCHEMA}, schema=SCHEMA, strict=False)


def sample_set_id(sample_ids) -> str:
    """The id of a sample set: sha256 of the sorted, newline-joined sample ids (12 hex)."""
    return hashlib.sha256("\n".join(sorted(map(str, sample_ids))).encode()).hexdigest()[:12]


def coverage_of(parameters: dict[str, Any] | None, n_samples: int | None, n_split=None) -> str:
    """``split`` (a whole split or dataset), ``test-set`` (exactly the members of a stored
    test set) or ``subset`` (``--sample`` or a real ``--limit``)."""
    p = parameters or {}
    if p.get("test_set"):
        return "test-set"
    if p.get("samples"):
        return "subset"
    limit = p.get("limit")
    if limit is not None and (n_split is None or n_samples is None or n_samples < n_split):
        return "subset"
    return "split"
