"""Does a model suit the data it is run on? Resolution, modality and stain checks.

A model card's ``input.mpp`` is the resolution it was trained at; cellbench resizes images of
known mpp to it (:mod:`cellbench.models.inference`) and uses images of unknown mpp as they are.
Both can be wrong silently: CPM-15 mixes magnifications (one model's PQ on one image moves
0.65 -> 0.30 between 0.25 and 0.5 µm/px), and a fluorescence model on H&E scores PQ 0 without
complaint. :func:`calibration_warnings` names each risk in one line; ``evaluate`` prints them,
stores them with the run (``warnings``) and the app shows them.

- **mpp unknown**: the card has an mpp and some images have none;
- **mpp far off**: an image's mpp differs from the card's by more than :data:`MPP_WARN`
  (25 %): it is resampled by that factor, which a model rarely tolerates;
- **modality / stain**: the model's training datasets (catalog entries) are of another
  modality (brightfield / fluorescence), or share no stain with the test dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MPP_WARN = 0.25


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def mpp_warnings(model_id: str, model_mpp: float | None, mpps: Iterable[Any]) -> list[str]:
    """Warnings about the images' mpp against the model's (see the module docstring)."""
    if model_mpp is None:
        return []
    vals = list(mpps)
    out = []
    unknown = sum(v is None for v in vals)
    if unknown:
        out.append(
            f"the mpp of {unknown} of {len(vals)} images is unknown; model '{model_id}' was "
            f"trained at {_fmt(model_mpp)} µm/px: they are used as they are (give the "
            "dataset's mpp, or per image with `datasets add --mpp-from`)"
        )
    off = sorted(
        {float(v) for v in vals if v is not None and abs(float(v) / model_mpp - 1) > MPP_WARN}
    )
    if off:
        n = sum(v is not None and float(v) in off for v in vals)
        shown = ", ".join(_fmt(v) for v in off[:4]) + (" ..." if len(off) > 4 else "")
        out.append(
            f"{n} of {len(vals)} images are at {shown} µm/px, more than "
            f"{MPP_WARN:.0%} from model '{model_id}''s {_fmt(model_mpp)} µm/px: they are "
            "resampled to it"
        )
    return out


def domain_warnings(card, dataset, catalog) -> list[str]:
    """Modality and stain of the model's training datasets against the test dataset's."""
    train = [catalog.get(d) for d in card.train_datasets if d in catalog.ids]
    if not train:
        return []
    out = []
    modalities = sorted({t.modality for t in train})
    if dataset.modality not in modalities:
        out.append(
            f"model '{card.id}' was trained on {'/'.join(modalities)} images "
            f"({', '.join(t.id for t in train)}); '{dataset.id}' is {dataset.modality}"
        )
    stains = {s.lower() for t in train for s in t.stain}
    if stains and dataset.stain and not stains & {s.lower() for s in dataset.stain}:
        out.append(
            f"model '{card.id}' was trained on {', '.join(sorted(stains))}; '{dataset.id}' "
            f"is stained {', '.join(dataset.stain)}"
        )
    return out


def calibration_warnings(card, dataset, catalog, records) -> list[str]:
    """Every warning for running ``card`` on ``records`` of ``dataset`` (module docstring)."""
    if card is None:
        return []
    return [
        *domain_warnings(card, dataset, catalog),
        *mpp_warnings(card.id, card.input.mpp, (r.meta.get("mpp") for r in records)),
    ]
