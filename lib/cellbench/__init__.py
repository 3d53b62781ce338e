"""cellbench: a QuPath-interoperable workbench for multi-source cell and nucleus datasets.

Subpackages follow the data flow; each imports only from those before it (checked by
``tests/test_layers.py``):

0. :mod:`cellbench.core`      data root and workspace locations, errors, atomic writes;
1. :mod:`cellbench.data`      catalog, classes, samples, readers, WSI, splits, user datasets;
2. :mod:`cellbench.metrics`   exact, convention-aware scoring (numpy/scipy only);
3. :mod:`cellbench.models`    cards, registry, networks, inference, post-processing, training;
4. :mod:`cellbench.runs`      evaluation runs, the metrics store, jobs, reference experiments;
5. :mod:`cellbench.analysis`  group summaries, bootstrap, cross-dataset comparisons;
6. :mod:`cellbench.viz`       figure builders, overlays, error review, paper figure sets;
7. :mod:`cellbench.qupath`    QuPath GeoJSON export and projects.

Faces, which may import anything and which nothing imports: :mod:`cellbench.app` (Streamlit
plumbing of ``pages/``) and :mod:`cellbench.cli` (the ``cellbench`` command).
"""

__version__ = "0.1.0"
