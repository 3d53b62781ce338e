"""Splits that keep groups (centers, patients, slides) whole.

- :func:`center_held_out`: seed 000's protocol, whole centers to train / validation / test in
  the proportions 6 : 2 : 2 (its ten centers give six, two and two). Applied to any dataset
  whose samples carry ``center`` (MoNuSeg: the TCGA tissue-source-site code of the slide
  barcode).
- :func:`group_holdout`: a validation subset taken from a training split by whole groups
  (patient, else slide, else sample), for early stopping without touching test data.

Both are deterministic in ``seed`` and take plain ``meta`` mappings (the standard sample
columns), so they need neither polars nor the data.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CenterSplit:
    """Sample ids and centers of each part of a center-held-out split."""

    train: list[str]
    val: list[str]
    test: list[str]
    centers: dict[str, list[str]]

    def part(self, name: str) -> list[str]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _group_of(meta: Mapping, keys: Sequence[str]) -> str:
    for k in keys:
        if meta.get(k) not in (None, ""):
            return f"{k}:{meta[k]}"
    return f"sample:{meta['sample_id']}"


def center_held_out(
    metas: Sequence[Mapping],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> CenterSplit:
    """Assign whole centers to train / validation / test.

    Centers are shuffled with ``seed``; the test and validation parts get
    ``round(fraction * n_centers)`` centers each (at least one), train the rest. Samples without
    a center raise ``ValueError`` (they cannot be held out honestly).

    Parameters
    ----------
    metas
        One mapping per sample with at least ``sample_id`` and ``center``.
    fractions
        Train, validation and test shares of the centers (seed 000: 6/10, 2/10, 2/10).
    """
    missing = [m["sample_id"] for m in metas if m.get("center") in (None, "")]
    if missing:
        raise ValueError(f"{len(missing)} samples have no center (e.g. '{missing[0]}')")
    centers = sorted({str(m["center"]) for m in metas})
    if len(centers) < 3:
        raise ValueError(f"a center-held-out split needs 3 or more centers, found {len(centers)}")
    random.Random(seed).shuffle(centers)
    total = sum(fractions)
    n_test = max(1, round(fractions[2] / total * len(centers)))
    n_val = max(1, round(fractions[1] / total * len(centers)))
    parts = {
        "test": sorted(centers[:n_test]),
        "val": sorted(centers[n_test : n_test + n_val]),
        "train": sorted(centers[n_test + n_val :]),
    }
    where = {c: p for p, cs in parts.items() for c in cs}
    ids: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for m in metas:
        ids[where[str(m["center"])]].append(m["sample_id"])
    return CenterSplit(ids["train"], ids["val"], ids["test"], parts)


def group_holdout(
    metas: Sequence[Mapping],
    fraction: float = 0.2,
    seed: int = 0,
    keys: Sequence[str] = ("patient_id", "slide_id"),
) -> tuple[list[str], list[str]]:
    """Split sample ids into ``(keep, held_out)`` by whole groups (first key present).

    About ``fraction`` of the groups (at least one, never all) are held out.
    """
    groups: dict[str, list[str]] = {}
    for m in metas:
        groups.setdefault(_group_of(m, keys), []).append(m["sample_id"])
    names = sorted(groups)
    if len(names) < 2:
        raise ValueError("a held-out validation part needs at least two groups")
    random.Random(seed).shuffle(names)
    n = min(len(names) - 1, max(1, round(fraction * len(names))))
    held = set(names[:n])
    keep = [s for g in sorted(groups) if g not in held for s in groups[g]]
    out = [s for g in sorted(held) for s in groups[g]]
    return keep, out
