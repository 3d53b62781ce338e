"""Named, versioned composite test sets (seed 003's NucFuse-test).

A test set is a **definition** (which datasets, how many tiles per dataset, the minimum tile
size, classes whose images are left out, the random seed) and the **member list** it gives on
the local data. Both are stored together as ``test_sets/<name>/v<N>.json`` in the workspace
(``$CELLBENCH_HOME``), or read from the reference results (``results/reference/test_sets``,
committed); building again writes a new version only when the definition or the members
changed, so a version, once written, always names the same samples.

Selection rule per dataset (seed 003, Section 3):

1. candidates are the dataset's **tiles**: samples, or groups of samples where the local copy
   stores one source tile as patches (``unit``; CoNSeP's 1000x1000 tiles are 16 patches of
   256x256 here, grouped by ``slide_id``);
2. tiles smaller than ``min_size`` pixels in either side (default 256), and tiles with an
   annotated object of an excluded class (seed 003 leaves out MoNuSAC images with
   macrophages) are dropped, each with its reason;
3. the tiles come from the official ``test`` split when it has any, else ``val``, else from
   the whole dataset (``source`` says which);
4. when more than ``per_dataset`` tiles (default 14: MoNuSeg's official test set, the smallest)
   qualify, ``per_dataset`` are drawn with ``random.Random(seed)`` from the sorted tile ids;
   with fewer, all are taken and the shortfall is recorded.

A dataset of the definition without local data is listed under ``missing``; evaluating "on the
test set" then covers the datasets that are present, and every comparison says which.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cellbench.core import config
from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import CellbenchError
from cellbench.data.catalog import Catalog
from cellbench.data.readers import get_reader
from cellbench.data.record_cache import records_of

#: Name pattern of a test set (also a folder name).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: Split preference for the tiles of one dataset (seed 003: test first, then validation).
SOURCE_ORDER = ("test", "val")


@dataclass(frozen=True)
class TestSetDefinition:
    """What a composite test set is made of (see the module docstring for the rule).

    Attributes
    ----------
    name
        Lower-case id (``nucfuse-test``).
    datasets
        Catalog dataset ids, in order.
    per_dataset
        Tiles per dataset (``k``).
    min_size
        Minimum tile height and width in pixels.
    exclude
        ``{dataset: [class names]}``: tiles with an object of one of these classes are dropped.
    unit
        ``{dataset: metadata column}``: tiles made of several samples (patches), grouped by
        the column; other datasets use one sample per tile.
    seed
        Seed of the draw when more tiles qualify than ``per_dataset``.
    """

    name: str
    datasets: tuple[str, ...]
    per_dataset: int = 14
    min_size: int = 256
    exclude: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unit: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise CellbenchError(
                f"test set name '{self.name}': use lower-case letters, digits, '.', '_', '-'"
            )
        if self.per_dataset < 1:
            raise CellbenchError(f"test set '{self.name}': per_dataset must be >= 1")
        if self.min_size < 0:
            raise CellbenchError(f"test set '{self.name}': min_size must be >= 0")
        if not self.datasets:
            raise CellbenchError(f"test set '{self.name}': no datasets")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["datasets"] = list(self.datasets)
        d["exclude"] = {k: list(v) for k, v in sorted(self.exclude.items())}
        d["unit"] = dict(sorted(self.unit.items()))
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TestSetDefinition:
        return cls(
            name=d["name"],
            datasets=tuple(d["datasets"]),
            per_dataset=int(d.get("per_dataset", 14)),
            min_size=int(d.get("min_size", 256)),
            exclude={k: tuple(v) for k, v in (d.get("exclude") or {}).items()},
            unit=dict(d.get("unit") or {}),
            seed=int(d.get("seed", 0)),
            description=d.get("description", ""),
        )


#: Seed 003's NucFuse-test: 14 tiles from each of its ten datasets, >= 256x256, MoNuSAC images
#: with macrophages left out. CoNSeP's tiles are stored as 16 patches each here (``slide_id``).
NUCFUSE_TEST = TestSetDefinition(
    name="nucfuse-test",
    datasets=(
        "pcns",
        "puma",
        "monuseg",
        "cpm17",
        "tnbc",
        "nuinsseg",
        "monusac",
        "consep",
        "dsb2018",
        "cryonuseg",
    ),
    exclude={"monusac": ("macrophage",)},
    unit={"consep": "slide_id"},
    description="seed 003 NucFuse-test: 14 tiles per dataset (test split first, then "
    "validation, else random), tiles >= 256x256, MoNuSAC images with macrophages left out",
)

#: NucFuse-test's rule over every local H&E nucleus dataset (the paper's ten datasets are not
#: all here, and GBM is not one of them; DSB 2018 is fluorescence): the unified test set of
#: the reference experiments' ranking and fusion.
UNIFIED_HE = TestSetDefinition(
    name="unified-he",
    datasets=("monuseg", "consep", "cryonuseg", "monusac", "gbm"),
    exclude={"monusac": ("macrophage",)},
    unit={"consep": "slide_id"},
    description="NucFuse-test's rule (14 tiles per dataset, test split first, tiles >= "
    "256x256, MoNuSAC images with macrophages left out) over every local H&E nucleus "
    "dataset: MoNuSeg, CoNSeP, CryoNuSeg, MoNuSAC, GBM",
)

#: Definitions known by name; ``unified`` is the default test set of comparisons.
PRESETS: dict[str, TestSetDefinition] = {"nucfuse-test": NUCFUSE_TEST, "unified-he": UNIFIED_HE}
ALIASES = {"unified": "nucfuse-test"}


@dataclass
class TestSet:
    """One stored version of a test set: definition, members and what was left out."""

    definition: TestSetDefinition
    version: int
    members: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    missing: list[str]
    notes: list[str]
    catalog_version: str
    created: str
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def ref(self) -> str:
        """``name@vN``: the exact version (recorded with runs)."""
        return f"{self.name}@v{self.version}"

    @property
    def datasets(self) -> list[str]:
        """Datasets with members, in the definition's order."""
        have = {m["dataset"] for m in self.members}
        return [d for d in self.definition.datasets if d in have]

    def sample_ids(self, dataset: str) -> list[str]:
        """The member sample ids of one dataset, sorted."""
        return sorted(m["sample_id"] for m in self.members if m["dataset"] == dataset)

    def sample_sets(self) -> dict[str, str]:
        """``{dataset: sample set id}`` (the hash runs record, ``runs.store.sample_set_id``)."""
        return {d: _sample_set_id(self.sample_ids(d)) for d in self.datasets}

    def content_hash(self) -> str:
        body = {"definition": self.definition.to_json(), "members": self.members}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "definition": self.definition.to_json(),
            "members": self.members,
            "dropped": self.dropped,
            "missing": self.missing,
            "notes": self.notes,
            "catalog_version": self.catalog_version,
            "created": self.created,
            "content": self.content_hash(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], path: Path | None = None) -> TestSet:
        return cls(
            definition=TestSetDefinition.from_json(d["definition"]),
            version=int(d["version"]),
            members=list(d["members"]),
            dropped=list(d.get("dropped", [])),
            missing=list(d.get("missing", [])),
            notes=list(d.get("notes", [])),
            catalog_version=d.get("catalog_version", ""),
            created=d.get("created", ""),
            path=path,
        )

    def summary(self) -> list[dict[str, Any]]:
        """Per dataset: members, source split, tiles dropped by reason, shortfall."""
        rows = []
        for d in self.definition.datasets:
            ms = [m for m in self.members if m["dataset"] == d]
            dr = [x for x in self.dropped if x["dataset"] == d]
            rows.append(
                {
                    "dataset": d,
                    "tiles": len({m["tile"] for m in ms}),
                    "samples": len(ms),
                    "source": ms[0]["source"] if ms else None,
                    "dropped_small": sum(x["reason"].startswith("smaller") for x in dr),
                    "dropped_class": sum(x["reason"].startswith("has class") for x in dr),
                    "status": "missing" if d in self.missing else "ok",
                }
            )
        return rows


def _sample_set_id(ids: Iterable[str]) -> str:
    # the same hash as cellbench.runs.store.sample_set_id (data may not import runs)
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:12]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- building -----------------------------------------------------------------------------------


def _tiles(recs, column: str | None) -> dict[str, list]:
    tiles: dict[str, list] = {}
    for r in recs:
        key = r.sample_id if column is None else str(r.meta.get(column) or r.sample_id)
        tiles.setdefault(key, []).append(r)
    return tiles


def _too_small(recs, min_size: int) -> str | None:
    for r in recs:
        w, h = r.meta.get("width"), r.meta.get("height")
        if w is not None and h is not None and (int(w) < min_size or int(h) < min_size):
            return f"smaller than {min_size}x{min_size} ({r.sample_id}: {w}x{h})"
    return None


def _excluded_class(reader, recs, names: set[str], class_names: Mapping[int, str]) -> str | None:
    for r in recs:
        s = reader.load(r)
        ids = set((s.classes or {}).values())
        if s.points is not None:
            ids |= {int(c) for c in s.points.cls}
        hit = sorted({class_names.get(i, str(i)) for i in ids} & names)
        if hit:
            return f"has class {', '.join(hit)} ({r.sample_id})"
    return None


def _select_dataset(catalog: Catalog, d: TestSetDefinition, dataset: str):
    """``(members, dropped, note)`` of one available dataset."""
    ds = catalog.get(dataset)
    reader = get_reader(catalog, dataset)
    recs = records_of(reader)
    column = d.unit.get(dataset)
    excluded = set(d.exclude.get(dataset, ()))
    known = {c.name for c in ds.classes}
    unknown = excluded - known
    if unknown:
        raise CellbenchError(
            f"test set '{d.name}': dataset '{dataset}' has no class {sorted(unknown)} "
            f"(its classes: {sorted(known)})"
        )
    class_names = {c.id: c.name for c in ds.classes}
    dropped: list[dict[str, Any]] = []
    eligible: dict[str | None, dict[str, list]] = {}
    for split in (*SOURCE_ORDER, None):
        part = [r for r in recs if split is None or r.split == split]
        if not part:
            continue
        ok: dict[str, list] = {}
        dropped = []  # only the reasons of the split that is used (or the last tried) count
        for tile, members in sorted(_tiles(part, column).items()):
            reason = _too_small(members, d.min_size)
            if reason is None and excluded:
                reason = _excluded_class(reader, members, excluded, class_names)
            if reason is None:
                ok[tile] = members
            else:
                dropped.append({"dataset": dataset, "tile": tile, "reason": reason})
        if ok:
            eligible[split] = ok
            break
    if not eligible:
        return [], dropped, f"{dataset}: no tile qualifies"
    split, ok = next(iter(eligible.items()))
    source = split or "random"
    names = sorted(ok)
    chosen = names
    note = None
    if len(names) > d.per_dataset:
        chosen = sorted(random.Random(f"{d.seed}:{dataset}").sample(names, d.per_dataset))
    elif len(names) < d.per_dataset:
        note = f"{dataset}: {len(names)} of {d.per_dataset} tiles ({source}: all that qualify)"
    members = [
        {"dataset": dataset, "sample_id": r.sample_id, "tile": t, "source": source}
        for t in chosen
        for r in sorted(ok[t], key=lambda r: r.sample_id)
    ]
    return members, dropped, note


def build(definition: TestSetDefinition, catalog: Catalog) -> TestSet:
    """The members of ``definition`` on the local data (not stored; see :func:`save`)."""
    members: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    missing: list[str] = []
    notes: list[str] = []
    for dataset in definition.datasets:
        try:
            ds = catalog.get(dataset)
        except KeyError as e:
            raise CellbenchError(f"test set '{definition.name}': {e}") from None
        if not catalog.is_available(ds):
            missing.append(dataset)
            continue
        m, dr, note = _select_dataset(catalog, definition, dataset)
        members += m
        dropped += dr
        if note:
            notes.append(note)
    if not members:
        raise CellbenchError(
            f"test set '{definition.name}': no member on the local data "
            f"(datasets without local data: {', '.join(missing) or 'none'})"
        )
    return TestSet(definition, 0, members, dropped, missing, notes, catalog.version, _now())


# -- storage ------------------------------------------------------------------------------------


def _roots() -> list[Path]:
    roots = [config.home() / "test_sets"]
    ref = config.reference_store()
    if ref is not None:
        roots.append(ref / "test_sets")
    return roots


def _versions(name: str) -> list[tuple[int, Path]]:
    found: dict[int, Path] = {}
    for root in reversed(_roots()):  # the workspace wins over the reference store
        for p in (root / name).glob("v*.json"):
            m = re.fullmatch(r"v(\d+)\.json", p.name)
            if m:
                found[int(m.group(1))] = p
    return sorted(found.items())


def versions(name: str) -> list[int]:
    """The stored version numbers of a test set, oldest first."""
    return [v for v, _ in _versions(name)]


def _read(path: Path) -> TestSet:
    from cellbench.core.safety import read_json

    try:
        return TestSet.from_json(read_json(path, "test set"), path)
    except (ValueError, KeyError, TypeError) as e:
        raise CellbenchError(f"{path}: not a readable test set ({type(e).__name__}: {e})") from e


def stored_names() -> list[str]:
    """Names of the stored test sets (workspace and reference results)."""
    return sorted({p.name for r in _roots() if r.is_dir() for p in r.iterdir() if p.is_dir()})


def _parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, ver = ref.partition("@")
    name = ALIASES.get(name, name)
    if not NAME_RE.match(name):  # a name is a folder: never a path or a pattern
        raise CellbenchError(
            f"test set name '{name}': use lower-case letters, digits, '.', '_', '-'"
        )
    if ver and not re.fullmatch(r"v\d+", ver):
        raise CellbenchError(f"test set '{ref}': the version is written name@v<N>")
    return name, int(ver[1:]) if ver else None


def load(ref: str) -> TestSet:
    """A stored test set: ``name`` (newest version) or ``name@vN``."""
    name, ver = _parse_ref(ref)
    versions = _versions(name)
    if not versions:
        known = ", ".join(stored_names()) or "none"
        raise CellbenchError(
            f"test set '{name}' is not stored (stored: {known}); "
            f"build it with 'cellbench testset build {name}'"
        )
    if ver is None:
        return _read(versions[-1][1])
    for v, p in versions:
        if v == ver:
            return _read(p)
    raise CellbenchError(
        f"test set '{name}' has no version {ver} (versions: "
        f"{', '.join(f'v{v}' for v, _ in versions)})"
    )


def save(ts: TestSet) -> TestSet:
    """Store ``ts`` as a new version unless the newest stored one has the same content."""
    versions = _versions(ts.name)
    if versions:
        latest = _read(versions[-1][1])
        if latest.content_hash() == ts.content_hash():
            return latest
    ts.version = versions[-1][0] + 1 if versions else 1
    ts.path = config.home() / "test_sets" / ts.name / f"v{ts.version}.json"
    write_json_atomic(ts.path, ts.to_json())
    return ts


def resolve(ref: str, catalog: Catalog | None = None) -> TestSet:
    """A stored version of ``ref``; a preset not stored yet is built and stored first."""
    name, ver = _parse_ref(ref)
    if _versions(name) or ver is not None or name not in PRESETS:
        return load(ref)
    from cellbench.data.catalog import load_catalog

    return save(build(PRESETS[name], catalog or load_catalog()))


def definition_from_options(
    name: str,
    datasets: Sequence[str] | None,
    per_dataset: int | None,
    min_size: int | None,
    exclude: Sequence[str] | None,
    unit: Sequence[str] | None,
    seed: int | None,
) -> TestSetDefinition:
    """A definition from CLI-style options, starting from the preset of that name if any.

    ``exclude`` items are ``dataset:class``, ``unit`` items ``dataset:column``.
    """
    name = ALIASES.get(name, name)
    base = PRESETS.get(name)

    def pairs(items: Sequence[str], what: str) -> list[tuple[str, str]]:
        out = []
        for it in items:
            a, sep, b = it.partition(":")
            if not sep or not a or not b:
                raise CellbenchError(f"{what} '{it}': write it as dataset:{what}")
            out.append((a, b))
        return out

    excl: dict[str, tuple[str, ...]] = dict(base.exclude) if base and exclude is None else {}
    for a, b in pairs(exclude or [], "class"):
        excl[a] = (*excl.get(a, ()), b)
    units = dict(base.unit) if base and unit is None else {}
    units.update(pairs(unit or [], "column"))
    if not datasets and base is None:
        raise CellbenchError(f"test set '{name}' is not a preset: give its --dataset list")
    return TestSetDefinition(
        name=name,
        datasets=tuple(datasets) if datasets else base.datasets,
        per_dataset=per_dataset if per_dataset is not None else (base.per_dataset if base else 14),
        min_size=min_size if min_size is not None else (base.min_size if base else 256),
        exclude=excl,
        unit=units,
        seed=seed if seed is not None else (base.seed if base else 0),
        description=base.description if base and not datasets else "",
    )
