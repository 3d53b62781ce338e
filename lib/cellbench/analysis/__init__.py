"""Layer 5, analysis: queries over the metrics store. Group summaries with bootstrap confidence
intervals (:mod:`~cellbench.analysis.groups`); cross-dataset matrices, normalisations, ranking
and fusion (:mod:`~cellbench.analysis.cross`).

May import :mod:`cellbench.core`, :mod:`cellbench.data`, :mod:`cellbench.metrics`,
:mod:`cellbench.models` and :mod:`cellbench.runs`.
"""

from cellbench.analysis.cross import (
    CROSS_FORMS,
    as_matrix,
    cross_correlation,
    finished_runs,
    fusion,
    latest_runs,
    ranking,
    train_test_matrix,
)
from cellbench.analysis.groups import (
    CLUSTER_KEYS,
    bootstrap_mean,
    dataset_figures,
    group_summary,
    model_summary,
    sample_values,
)

__all__ = [
    "CROSS_FORMS",
    "CLUSTER_KEYS",
    "as_matrix",
    "bootstrap_mean",
    "cross_correlation",
    "dataset_figures",
    "finished_runs",
    "fusion",
    "group_summary",
    "latest_runs",
    "model_summary",
    "ranking",
    "sample_values",
    "train_test_matrix",
]
