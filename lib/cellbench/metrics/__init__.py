"""Layer 2, metrics: exact, convention-aware scoring (``shared/DESIGN.md`` §5).

May import :mod:`cellbench.core` and :mod:`cellbench.data` (the sample model, image I/O and
point files it scores).

One entry point per image and kind, plus dataset aggregation per preset:

- :func:`instance_scores` / :func:`aggregate_instances`: PQ, DQ, SQ, AJI, AJI+, Dice1/2,
  F1 at IoU thresholds, per-class PQ, mPQ, bPQ, mPQ+, HoVer-Net type classification;
- :func:`matching_scores`: the matching statistics alone (what StarDist's ``matching`` gives);
- :func:`point_scores` / :func:`aggregate_points`: OCELOT-style point detection;
- :func:`semantic_scores` / :func:`aggregate_semantic`: pixel accuracy, IoU, Dice;
- :func:`type_counts` / :func:`type_terms`: HoVer-Net F_d and F_t from centroids and types;
- :func:`compare_presets`: where two conventions disagree on the same inputs, and why.

Presets (:data:`PRESETS`, :func:`describe`): ``hovernet``, ``stardist``, ``conic``,
``torchmetrics``, ``isbi2014`` for instances (label maps or overlapping objects); ``ocelot``,
``hungarian`` for points; ``apacs23``, ``pixels_image`` for class masks.

Numpy/scipy only (numba, when installed, compiles the pixel pass), so that evaluation can run
on machines without polars or streamlit.
"""

from cellbench.metrics.aggregate import (
    aggregate_groups,
    aggregate_instances,
    aggregate_points,
    aggregate_task,
)
from cellbench.metrics.batch import instance_scores_many
from cellbench.metrics.compare import compare_presets
from cellbench.metrics.instance import (
    IOU_RANGE,
    instance_scores,
    matching_scores,
    parse_thresholds,
)
from cellbench.metrics.overlap import Overlap, compute_overlap
from cellbench.metrics.points import point_scores, type_counts, type_terms
from cellbench.metrics.presets import (
    INSTANCE_PRESETS,
    POINT_PRESETS,
    PRESETS,
    SEMANTIC_PRESETS,
    Preset,
    describe,
    get_preset,
)
from cellbench.metrics.semantic import aggregate_semantic, semantic_scores

__all__ = [
    "instance_scores_many",
    "INSTANCE_PRESETS",
    "IOU_RANGE",
    "POINT_PRESETS",
    "PRESETS",
    "SEMANTIC_PRESETS",
    "Overlap",
    "Preset",
    "aggregate_groups",
    "aggregate_instances",
    "aggregate_points",
    "aggregate_semantic",
    "aggregate_task",
    "compare_presets",
    "compute_overlap",
    "describe",
    "get_preset",
    "instance_scores",
    "matching_scores",
    "parse_thresholds",
    "point_scores",
    "semantic_scores",
    "type_counts",
    "type_terms",
]
