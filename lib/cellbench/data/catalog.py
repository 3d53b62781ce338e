"""The dataset catalog: ``data_catalog.yaml``, validated with a schema.

Every dataset of the seed papers has an entry, with or without local data. An entry gives the
dataset's metadata (stain, modality, organs, magnification and microns per pixel, class set
mapped onto the class hierarchy, splits), the figures its paper gives, and, where the data is
present under the data root, the reader (``local.format``), its options and its location.

Locations are relative to the data root (``CELLBENCH_DATA``) and may not escape it.

A malformed file or an invalid entry raises :class:`~cellbench.core.errors.CatalogError` naming the
file, the entry and the field.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cellbench.core import config
from cellbench.core.errors import CatalogError

Task = Literal[
    "instance_segmentation",
    "semantic_segmentation",
    "detection",
    "classification",
    "tissue_segmentation",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassDef(_Strict):
    """One class of a dataset's class set.

    ``id`` is the integer the dataset's files use; ``nodes`` the class-hierarchy nodes it covers
    (one node, or several when the class is a union, e.g. OCELOT's "background cell").
    """

    id: int
    name: str
    nodes: list[str] = Field(min_length=1)
    color: str | None = None


class SplitDef(_Strict):
    """A split: official ones come from the dataset, others are cellbench's (documented)."""

    name: str
    kind: Literal["official", "custom", "center_held_out"] = "official"
    description: str = ""
    n_images: int | None = None


class PaperFacts(_Strict):
    """Figures a paper gives about the dataset (used when data is absent, and to cross-check)."""

    source: str
    images: int | None = None
    nuclei: int | None = None
    patients: int | None = None
    slides: int | None = None
    centers: int | None = None
    organs: int | None = None
    tile_size: str | None = None
    notes: str = ""


class LocalData(_Strict):
    """Where and how to read the local copy of a dataset."""

    format: str
    location: str
    options: dict[str, Any] = Field(default_factory=dict)
    #: What a user must know about results on this local copy (shown with them).
    caveats: list[str] = Field(default_factory=list)

    @field_validator("location")
    @classmethod
    def _relative(cls, v: str) -> str:
        p = Path(v)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError("must be a path relative to the data root, without '..'")
        return v

    @field_validator("options")
    @classmethod
    def _confined(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Paths and glob patterns in reader options stay inside the dataset's location.

        Every string option is checked except metadata constants (``meta``, ``organs``) and
        regular expressions (keys ending in ``pattern``).
        """
        from cellbench.core.errors import DataError
        from cellbench.core.safety import check_relative

        stack: list[tuple[str, Any]] = [(k, x) for k, x in v.items()]
        while stack:
            key, x = stack.pop()
            leaf = key.rsplit(".", 1)[-1]
            if leaf in ("meta", "organs") or leaf.endswith("pattern"):
                continue
            if isinstance(x, dict):
                stack.extend((f"{key}.{k}", y) for k, y in x.items())
            elif isinstance(x, list):
                stack.extend((key, y) for y in x)
            elif isinstance(x, str):
                try:
                    check_relative(x, key, "path")
                except DataError as e:
                    raise ValueError(f"option '{key}': {e.problem}") from None
        return v


class Dataset(_Strict):
    """One catalog entry (see ``shared/DESIGN.md`` §3)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    name: str
    citation: str
    license: str
    url: str
    tasks: list[Task] = Field(min_length=1)
    stain: list[str] = Field(min_length=1)
    modality: Literal["brightfield", "fluorescence"]
    organs: list[str]
    magnification: str | None = None
    mpp: float | None = Field(default=None, gt=0)
    classes: list[ClassDef] = Field(default_factory=list)
    other_class_sets: dict[str, list[ClassDef]] = Field(default_factory=dict)
    splits: list[SplitDef] = Field(default_factory=list)
    paper: list[PaperFacts] = Field(default_factory=list)
    obtain: str
    local: LocalData | None = None
    notes: str = ""

    @field_validator("organs")
    @classmethod
    def _organ_vocabulary(cls, v: list[str]) -> list[str]:
        """Organs in the shared vocabulary (``head-and-neck`` -> ``head and neck``, ...)."""
        from cellbench.data.vocabulary import organ

        return list(dict.fromkeys(organ(o) for o in v))

    @field_validator("classes")
    @classmethod
    def _unique_class_ids(cls, v: list[ClassDef]) -> list[ClassDef]:
        ids = [c.id for c in v]
        if len(ids) != len(set(ids)):
            raise ValueError(f"class ids must be unique, got {ids}")
        return v

    def class_set(self, name: str | None = None):
        """A view with ``id`` and ``classes`` of the primary (None) or a named other class set.

        The classes functions of :mod:`cellbench.data.classes` accept such a view like an entry.
        """
        from types import SimpleNamespace

        if name is None:
            return self
        if name not in self.other_class_sets:
            raise KeyError(f"dataset '{self.id}' has no class set '{name}'")
        return SimpleNamespace(id=f"{self.id}:{name}", classes=self.other_class_sets[name])

    def class_by_name(self) -> dict[str, ClassDef]:
        """Map class name (and lower-cased name) to its definition."""
        out: dict[str, ClassDef] = {}
        for c in self.classes:
            out[c.name] = c
            out.setdefault(c.name.lower(), c)
        return out


class Catalog:
    """A validated catalog bound to a data root.

    Parameters
    ----------
    datasets
        The entries, in file order.
    path
        The YAML file they came from.
    root
        The data root that ``local.location`` is relative to.
    """

    def __init__(self, datasets: list[Dataset], path: Path, root: Path):
        self.path = path
        self.root = root
        self._by_id = {d.id: d for d in datasets}
        #: datasets of a merged user catalog: id -> (its file, its data root)
        self.user: dict[str, tuple[Path, Path]] = {}

    def merge_user(self, user: Catalog) -> None:
        """Add a user catalog's datasets (their locations are relative to its own root)."""
        for d in user:
            if d.id in self._by_id:
                raise CatalogError(user.path, f"dataset '{d.id}' is already defined in {self.path}")
            self._by_id[d.id] = d
            self.user[d.id] = (user.path, user.root)

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    def get(self, dataset_id: str) -> Dataset:
        """Return an entry; an unknown id raises :class:`CatalogError` listing the known ones."""
        try:
            return self._by_id[dataset_id]
        except KeyError:
            raise CatalogError(
                self.path, f"no dataset '{dataset_id}'; known: {', '.join(self.ids)}"
            ) from None

    def location(self, dataset: Dataset | str) -> Path | None:
        """Absolute location of a dataset's local data, or None if it has no local entry.

        Raises :class:`CatalogError` if the location escapes the data root (e.g. a symlink).
        """
        d = self.get(dataset) if isinstance(dataset, str) else dataset
        if d.local is None:
            return None
        root = self.user[d.id][1] if d.id in self.user else self.root
        loc = (root / d.local.location).resolve()
        if not loc.is_relative_to(root.resolve()):
            raise CatalogError(self.path, f"dataset '{d.id}': local.location escapes the data root")
        return loc

    def caveats(self, dataset_ids) -> list[str]:
        """``"<id>: <caveat>"`` for each local-data caveat of the given datasets (see
        ``local.caveats``), in order, without repeats."""
        out: list[str] = []
        for i in dict.fromkeys(dataset_ids):
            d = self._by_id.get(i)
            if d is not None and d.local is not None:
                out += [f"{i}: {c}" for c in d.local.caveats]
        return out

    def is_available(self, dataset: Dataset | str) -> bool:
        """True when the dataset has a local entry and its location exists under the root."""
        loc = self.location(dataset)
        return loc is not None and loc.exists()

    @cached_property
    def version(self) -> str:
        """Short sha256 of the catalog file, recorded with results as the catalog version."""
        import hashlib

        h = hashlib.sha256(self.path.read_bytes())
        for p in sorted({p for p, _ in self.user.values()}):
            h.update(p.read_bytes())
        return h.hexdigest()[:12]


def _format_validation_error(err: ValidationError, entry: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(entry)"
        parts.append(f"dataset '{entry}': field '{loc}': {e['msg']}")
    return "; ".join(parts)


def parse_catalog(text: str, path: Path, root: Path) -> Catalog:
    """Parse and validate catalog YAML text (see :func:`load_catalog`)."""
    doc = _parsed(text, path)
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list):
        raise CatalogError(path, "expected a mapping with a 'datasets' list at the top level")
    datasets: list[Dataset] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["datasets"]):
        entry = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
        if not isinstance(raw, dict):
            raise CatalogError(
                path, f"dataset {entry}: expected a mapping, got {type(raw).__name__}"
            )
        try:
            d = Dataset.model_validate(raw)
        except ValidationError as e:
            raise CatalogError(path, _format_validation_error(e, str(entry))) from None
        if d.id in seen:
            raise CatalogError(path, f"dataset '{d.id}': duplicate id")
        if d.local is not None and d.local.format not in _reader_formats():
            raise CatalogError(
                path,
                f"dataset '{d.id}': local.format '{d.local.format}' names no reader "
                f"(known: {', '.join(sorted(_reader_formats()))})",
            )
        seen.add(d.id)
        datasets.append(d)
    cat = Catalog(datasets, path, root)
    _check_classes(cat)
    return cat


#: Catalog texts at least this large are parsed once and kept as JSON in the workspace cache
#: (PyYAML takes ~3 s for 10,000 plain entries; the JSON copy loads in ~0.1 s).
_CACHE_BYTES = 256 * 1024


def _parsed(text: str, path: Path):
    """The catalog document: :func:`~cellbench.core.safety.load_yaml` (every check), or for a
    large catalog the JSON copy of its last parse, keyed by the text's sha256."""
    import contextlib
    import hashlib
    import json

    from cellbench.core import config
    from cellbench.core.atomic import write_bytes_atomic
    from cellbench.core.safety import load_yaml

    if len(text) < _CACHE_BYTES:
        return load_yaml(text, path, CatalogError)
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    cached = config.home() / "cache" / "catalog" / f"{key}.json"
    try:
        return json.loads(cached.read_bytes())
    except (OSError, ValueError):
        pass
    doc = load_yaml(text, path, CatalogError)
    # not JSON-able (dates...) or a read-only workspace: parsed again next time
    with contextlib.suppress(OSError, TypeError, ValueError):
        data = json.dumps(doc)
        if json.loads(data) == doc:  # JSON keeps it exactly (no integer keys, dates, ...)
            write_bytes_atomic(cached, data.encode("utf-8"))
    return doc


def _reader_formats() -> set[str]:
    from cellbench.data.readers import READERS

    return set(READERS)


def _check_classes(cat: Catalog) -> None:
    """Every class must map onto nodes of the class hierarchy."""
    from cellbench.data.classes import load_hierarchy

    tree = load_hierarchy()
    for d in cat:
        for c in [c for cs in [d.classes, *d.other_class_sets.values()] for c in cs]:
            for n in c.nodes:
                if n not in tree:
                    raise CatalogError(
                        cat.path,
                        f"dataset '{d.id}': field 'classes': class '{c.name}' maps to unknown "
                        f"hierarchy node '{n}'",
                    )


def load_catalog(
    path: str | Path | None = None, root: str | Path | None = None, user: bool = True
) -> Catalog:
    """Load and validate a catalog, merged with the user catalog when there is one.

    Parameters
    ----------
    path
        Catalog YAML; default :func:`cellbench.core.config.catalog_path`.
    root
        Data root; default :func:`cellbench.core.config.data_root`.
    user
        Merge the user catalog (``$CELLBENCH_HOME/user_catalog.yaml``, datasets added with
        ``cellbench qupath import``; locations relative to ``$CELLBENCH_HOME/user_data``).

    Raises
    ------
    CatalogError
        Missing or malformed file, or an invalid entry (names the entry and the field).
    """
    p = Path(path) if path is not None else config.catalog_path()
    r = Path(root).resolve() if root is not None else config.data_root()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(p, "catalog file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(p, f"cannot read catalog: {e}") from None
    cat = parse_catalog(text, p, r)
    up = config.user_catalog_path()
    if user and up.is_file() and up.resolve() != p.resolve():
        cat.merge_user(load_catalog(up, config.user_data_root(), user=False))
    return cat
