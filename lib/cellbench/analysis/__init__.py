"""Layer 5, analysis: queries over the metrics store. Group summaries with bootstrap confidence
intervals (:mod:`~cellbench.analysis.groups`); which runs are comparable
(:mod:`~cellbench.analysis.comparable`); cross-dataset matrices, normalisations, ranking
and fusion (:mod:`~cellbench.analysis.cross`).

May import :mod:`cellbench.core`, :mod:`cellbench.data`, :mod:`cellbench.metrics`,
:mod:`cellbench.models` and :mod:`cellbench.runs`.
"""

from cellbench.analysis.comparable import (
    comparable_runs,
    coverage_of,
    reference_sample_sets,
    run_table,
)
from cellbench.analysis.cross import (
    CROSS_FORMS,
    EMPTY_POLICIES,
    WEIGHTINGS,
    as_matrix,
    cross_correlation,
    finished_runs,
    fusion,
    latest_runs,
    ranking,
    train_test_matrix,
)
from cellbench.analysis.groups import (
    CI_MIN_N,
    CLUSTER_KEYS,
    bootstrap_mean,
    dataset_figures,
    group_summary,
    model_summary,
    pooled_groups,
    sample_values,
)

__all__ = [
    "CI_MIN_N",
    "CROSS_FORMS",
    "EMPTY_POLICIES",
    "WEIGHTINGS",
    "comparable_runs",
    "coverage_of",
    "pooled_groups",
    "reference_sample_sets",
    "run_table",
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
