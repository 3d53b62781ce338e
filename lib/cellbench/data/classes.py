"""The class hierarchy and label mapping between levels (seed 002, ``shared/DESIGN.md`` §4).

A dataset class is the set of hierarchy *leaves* below the nodes it maps to. This makes every
question about two label sets a question about leaf sets:

- a label of dataset A can be mapped to dataset B when its leaf set lies inside exactly one
  class of B (coarsening); mapping to a finer level is impossible and raises;
- the finest level two datasets share is the partition of their common leaves into the
  connected components of the "leaf sets overlap" relation between their classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from cellbench.core.config import PACKAGE_DIR

HIERARCHY_PATH = PACKAGE_DIR / "resources" / "class_hierarchy.yaml"


@dataclass(frozen=True)
class Hierarchy:
    """A forest of class nodes.

    Attributes
    ----------
    parent
        Node name to parent name (None for roots).
    children
        Node name to its children, in file order.
    """

    parent: dict[str, str | None]
    children: dict[str, tuple[str, ...]] = field(repr=False)

    def __contains__(self, node: str) -> bool:
        return node in self.parent

    @property
    def roots(self) -> list[str]:
        return [n for n, p in self.parent.items() if p is None]

    def leaves(self, node: str) -> frozenset[str]:
        """The leaves below ``node`` (the node itself if it is a leaf)."""
        kids = self.children[node]
        if not kids:
            return frozenset([node])
        return frozenset().union(*(self.leaves(k) for k in kids))

    def ancestors(self, node: str) -> list[str]:
        """``node`` and its ancestors, nearest first."""
        out = [node]
        while (p := self.parent[out[-1]]) is not None:
            out.append(p)
        return out

    def node_for(self, leaves: frozenset[str]) -> str | None:
        """The deepest node whose leaf set equals ``leaves``, or None."""
        cands = [n for n in self.parent if self.leaves(n) == leaves]
        return max(cands, key=lambda n: len(self.ancestors(n))) if cands else None


def _build(tree: dict, parent: str | None, par: dict, kids: dict, path: Path) -> None:
    for name, sub in tree.items():
        if name in par:
            raise ValueError(f"{path}: node '{name}' appears twice")
        par[name] = parent
        sub = sub or {}
        if not isinstance(sub, dict):
            raise ValueError(f"{path}: node '{name}' must map to a mapping of children")
        kids[name] = tuple(sub)
        _build(sub, name, par, kids, path)


@cache
def load_hierarchy(path: Path = HIERARCHY_PATH) -> Hierarchy:
    """Load the class forest from YAML (cached)."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    par: dict[str, str | None] = {}
    kids: dict[str, tuple[str, ...]] = {}
    _build(doc, None, par, kids, Path(path))
    return Hierarchy(par, kids)


def class_leaves(dataset, tree: Hierarchy | None = None) -> dict[str, frozenset[str]]:
    """Map each class name of a catalog entry to its leaf set."""
    tree = tree or load_hierarchy()
    return {c.name: frozenset().union(*(tree.leaves(n) for n in c.nodes)) for c in dataset.classes}


def label_map(src, dst, tree: Hierarchy | None = None) -> dict[int, int | None]:
    """Map the class ids of dataset ``src`` to class ids of dataset ``dst`` (coarsening).

    A source class maps to the destination class whose leaf set contains its own, or to None
    when it shares no leaf with any destination class (the destination set does not label it).

    Raises
    ------
    ValueError
        If a source class straddles several destination classes (that would need a finer label
        than the source has).
    """
    tree = tree or load_hierarchy()
    s, d = class_leaves(src, tree), class_leaves(dst, tree)
    dst_ids = {c.name: c.id for c in dst.classes}
    out: dict[int, int | None] = {}
    for c in src.classes:
        hits = [n for n, leaves in d.items() if leaves & s[c.name]]
        inside = [n for n in hits if s[c.name] <= d[n]]
        if len(inside) == 1 and len(hits) == 1:
            out[c.id] = dst_ids[inside[0]]
        elif not hits:
            out[c.id] = None
        else:
            raise ValueError(
                f"class '{c.name}' of '{src.id}' spans {sorted(hits)} of '{dst.id}': "
                f"it cannot be mapped to that finer level"
            )
    return out


@dataclass(frozen=True)
class SharedClass:
    """One class of the finest level two datasets share."""

    name: str
    leaves: frozenset[str]
    ids_a: tuple[int, ...]
    ids_b: tuple[int, ...]


def shared_level(a, b, tree: Hierarchy | None = None) -> list[SharedClass]:
    """The finest level at which datasets ``a`` and ``b`` can be compared.

    Classes of ``a`` and ``b`` whose leaf sets overlap are joined (transitively); each connected
    component becomes one shared class, named after the hierarchy node with exactly that leaf set
    when there is one, else after its members (``"x+y"``). Leaves only one dataset labels are left
    out (they cannot be compared).
    """
    tree = tree or load_hierarchy()
    la, lb = class_leaves(a, tree), class_leaves(b, tree)
    ida = {c.name: c.id for c in a.classes}
    idb = {c.name: c.id for c in b.classes}
    keys = [("a", n) for n in la] + [("b", n) for n in lb]
    leaves = {("a", n): v for n, v in la.items()} | {("b", n): v for n, v in lb.items()}
    root = {k: k for k in keys}

    def find(k):
        while root[k] != k:
            k = root[k]
        return k

    for x in la:
        for y in lb:
            if la[x] & lb[y]:
                root[find(("b", y))] = find(("a", x))
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for k in keys:
        groups.setdefault(find(k), []).append(k)
    out = []
    for members in groups.values():
        sides = {s for s, _ in members}
        if sides != {"a", "b"}:
            continue
        la_u = frozenset().union(*(leaves[k] for k in members if k[0] == "a"))
        lb_u = frozenset().union(*(leaves[k] for k in members if k[0] == "b"))
        common = la_u & lb_u
        name = tree.node_for(common) or "+".join(sorted(common))
        out.append(
            SharedClass(
                name=name,
                leaves=common,
                ids_a=tuple(sorted(ida[n] for s, n in members if s == "a")),
                ids_b=tuple(sorted(idb[n] for s, n in members if s == "b")),
            )
        )
    return sorted(out, key=lambda c: (min(c.ids_a), c.name))
