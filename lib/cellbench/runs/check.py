"""``cellbench store check [--repair]``: find (and quarantine) what is wrong in a metrics store.

Checked, in the writable store only (the reference store is read-only and committed):

- run records: readable JSON mappings whose ``run_id`` is their file name;
- metric parts: every parquet part is read in full (not only its footer) and must have the
  :data:`~cellbench.runs.store.SCHEMA` columns and only its own run's rows; the per-sample
  results JSON beside it must parse;
- left-overs of killed writers (temporary files, results without their committed part);
- duplicated rows (the same level, sample, class and metric twice in a run);
- runs recorded ``complete`` with fewer stored samples than they evaluated (``repair`` marks
  them ``interrupted``, so no comparison takes them for complete).

``repair`` moves unreadable records and corrupted parts (with their results) to
``quarantine/<UTC time>/`` under the store, removes left-overs, and quarantines redundant
copies of dataset-level rows; a run that lost samples to the quarantine is then resumed by
running its ``cellbench evaluate`` again. Runs being evaluated (locked) are reported, not touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import DataError
from cellbench.core.safety import NAME_RE, parse_json, read_bytes
from cellbench.runs.store import DATASET_PART, SCHEMA, Store, folder_parts

KEY = ["level", "sample_id", "class", "metric"]


@dataclass
class Problem:
    """One problem: the file, what is wrong, and what ``repair`` did (None: nothing)."""

    path: str
    problem: str
    repaired: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class _Checker:
    def __init__(self, store: Store, repair: bool):
        self.store = store
        self.root = store.root
        self.repair = repair
        self.problems: list[Problem] = []
        self.quarantine = self.root / "quarantine" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def report(self, path: Path, problem: str, fix=None) -> None:
        done = None
        if self.repair and fix is not None:
            done = fix()
        self.problems.append(Problem(str(path), problem, done))

    def move(self, *paths: Path):
        def fix() -> str:
            for p in paths:
                if p.exists():
                    dest = self.quarantine / p.relative_to(self.root)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    p.rename(dest)
            return f"moved to {self.quarantine}"

        return fix

    @staticmethod
    def delete(*paths: Path):
        def fix() -> str:
            for p in paths:
                p.unlink(missing_ok=True)
            return "removed"

        return fix

    # -- checks ------------------------------------------------------------------------------

    def records(self) -> None:
        for p in sorted((self.root / "runs").glob("*")):
            if p.suffix != ".json" or not NAME_RE.match(p.stem):
                self.report(p, "not a run record (name is not '<run id>.json')", self.move(p))
                continue
            try:
                info = parse_json(read_bytes(p, "run record"), p)
            except DataError as e:
                self.report(p, f"unreadable run record: {e.problem}", self.move(p))
                continue
            if not isinstance(info, dict) or info.get("run_id") != p.stem:
                self.report(p, "run record whose run_id is not its file name", self.move(p))

    def run_folder(self, d: Path) -> None:
        rid = d.name
        if not NAME_RE.match(rid):
            self.report(d, "metrics folder whose name is not a run id")
            return
        if self.store.is_locked(rid):
            self.report(d, "being evaluated now; not checked")
            return
        if not (self.root / "runs" / f"{rid}.json").is_file():
            self.report(d, "metric rows without a run record (delete the folder if unwanted)")
        stale = sorted(d.glob(".*.tmp"))
        try:
            parts, superseded = folder_parts(d)
            json_live, json_superseded = folder_parts(d, "json")
        except DataError as e:  # a damaged manifest: the parts as they are (quarantined on repair)
            self.report(Path(e.path), e.problem, self.move(Path(e.path)))
            parts, superseded = sorted(d.glob("part-*.parquet")), []
            json_live, json_superseded = sorted(d.glob("part-*.json")), []
        orphans = [j for j in json_live if not j.with_suffix(".parquet").exists()]
        for p in [*stale, *orphans]:
            self.report(p, "left by an interrupted write", self.delete(p))
        for p in [*superseded, *json_superseded]:
            self.report(p, "left by an interrupted compaction", self.delete(p))
        frames = []
        for p in parts:
            problem = _read_part(p, rid)
            if isinstance(problem, str):
                self.report(p, problem, self.move(p, p.with_suffix(".json")))
                continue
            frames.append(problem.with_columns(pl.lit(p.name).alias("_part")))
            j = p.with_suffix(".json")
            if j.is_file():
                try:
                    if not isinstance(parse_json(read_bytes(j, "results part"), j), dict):
                        raise DataError(j, "not a mapping of sample ids to results")
                except DataError as e:
                    self.report(j, f"unreadable results: {e.problem}", self.move(p, j))
        if frames:
            self.duplicates(d, pl.concat(frames, how="vertical_relaxed"))
        self.completeness(rid, frames)

    def duplicates(self, d: Path, df: pl.DataFrame) -> None:
        dup = df.filter(pl.struct(KEY).is_duplicated())
        if dup.is_empty():
            return
        levels = set(dup.get_column("level").unique().to_list())
        fix = None
        if levels == {"dataset"}:
            # parts holding only dataset rows: keep the fixed-name one (else the newest)
            only = [
                name
                for name, g in df.group_by("_part")
                if set(g.get_column("level").unique().to_list()) == {"dataset"}
                for name in [name[0]]
            ]
            keep = DATASET_PART if DATASET_PART in only else max(only, default=None)
            extra = [d / n for n in sorted(only) if n != keep]
            if extra:
                fix = self.move(*extra)
        self.report(
            d,
            f"{dup.height} duplicated rows ({', '.join(sorted(levels))} level; same sample, "
            "class and metric stored twice)",
            fix,
        )

    def completeness(self, rid: str, frames: list[pl.DataFrame]) -> None:
        p = self.root / "runs" / f"{rid}.json"
        try:
            info = parse_json(read_bytes(p, "run record"), p)
        except DataError:
            return
        if not isinstance(info, dict) or info.get("status") != "complete":
            return
        n = info.get("n_samples")
        done = (
            pl.concat(frames, how="vertical_relaxed")
            .filter(pl.col("level") == "sample")
            .get_column("sample_id")
            .n_unique()
            if frames
            else 0
        )
        if isinstance(n, int) and done < n:

            def fix() -> str:
                write_json_atomic(p, {**info, "status": "interrupted", "n_done": done})
                return "marked interrupted: run its evaluation again to resume"

            self.report(
                p,
                f"recorded complete but {done} of {n} samples are stored; run its evaluation "
                "again to resume",
                fix,
            )


def _read_part(p: Path, run_id: str) -> pl.DataFrame | str:
    """The part's rows, or why they cannot be used."""
    try:
        df = pl.read_parquet(p)
    except Exception as e:  # noqa: BLE001 - any failure to read is damage
        return f"corrupted metrics part ({type(e).__name__}: {str(e)[:120]})"
    missing = set(SCHEMA) - set(df.columns)
    if missing:
        return f"metrics part lacks columns {sorted(missing)}"
    others = set(df.get_column("run_id").unique().to_list()) - {run_id}
    if others:
        return f"metrics part holds rows of other runs {sorted(others)[:3]}"
    return df.select(list(SCHEMA))


def check_store(store: Store | None = None, repair: bool = False) -> list[Problem]:
    """Every problem of the (writable) store; with ``repair``, fixed where it can be safely.

    See the module docstring for what is checked and what ``repair`` does.
    """
    c = _Checker(store or Store(), repair)
    if (c.root / "runs").is_dir():
        c.records()
    if (c.root / "metrics").is_dir():
        for d in sorted(c.root / "metrics" / n for n in _listdir(c.root / "metrics")):
            if d.is_dir():
                c.run_folder(d)
    c.problems += user_data_leftovers(repair)
    return c.problems


def user_data_leftovers(repair: bool = False) -> list[Problem]:
    """Staging folders of an interrupted ``datasets add`` (``.<id>-*``), half-removed datasets
    (``.<id>.removed``) and set-aside files of an interrupted ``qupath import``
    (``<id>/.replaced``) under ``$CELLBENCH_HOME/user_data``; ``repair`` removes those whose
    dataset no writer holds (:mod:`cellbench.core.locks`)."""
    import fcntl
    import re
    import shutil

    from cellbench.core import config

    root = config.user_data_root()
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.iterdir()):
        m = re.match(r"^\.(?P<id>[a-z0-9][a-z0-9_\-]*?)(-[^/]+|\.removed)$", p.name)
        if m and p.is_dir():
            found.append((p, m.group("id"), "left by an interrupted `datasets add` / remove"))
        elif p.is_dir() and (p / ".replaced").is_dir():
            found.append((p / ".replaced", p.name, "set aside by an interrupted `qupath import`"))
    out = []
    for path, ds, what in found:
        lock = config.home() / "locks" / f"dataset-{ds}.lock"
        busy = False
        if lock.exists():
            with open(lock) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                except BlockingIOError:
                    busy = True
        action = None
        if repair and not busy:
            shutil.rmtree(path, ignore_errors=True)
            action = "removed"
        note = f"{what}" + ("; its dataset is being written now: left" if busy else "")
        out.append(Problem(str(path), note, action))
    return out


def _listdir(d: Path) -> list[str]:
    return [p.name for p in d.iterdir()]
