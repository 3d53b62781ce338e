"""Layer 4, runs: evaluation of a model or stored predictions into the metrics store
(:mod:`~cellbench.runs.evaluate`), the store itself (:mod:`~cellbench.runs.store`), background
jobs, the reference experiments and synthetic stores for tests and benchmarks.

May import :mod:`cellbench.core`, :mod:`cellbench.data`, :mod:`cellbench.metrics` and
:mod:`cellbench.models`.
"""
