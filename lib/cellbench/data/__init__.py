"""Layer 1, data: the catalog, the class hierarchy, the sample model and sample table, one reader
per format (:mod:`~cellbench.data.readers`), whole-slide access, image I/O, rasterising,
splits (center-held-out, group hold-out), named composite test sets (testsets) and user
datasets imported from QuPath.

May import :mod:`cellbench.core` only.
"""
