"""Layer 0, the foundation: where data and results live (:mod:`~cellbench.core.config`), the error
types every layer raises (:mod:`~cellbench.core.errors`) and atomic file writes
(:mod:`~cellbench.core.atomic`). Imports nothing of cellbench.
"""
