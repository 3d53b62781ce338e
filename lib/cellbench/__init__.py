"""cellbench: a QuPath-interoperable workbench for multi-source cell and nucleus datasets.

The package is organised by job (see ``shared/DESIGN.md`` §2):

- :mod:`cellbench.config`   data root and workspace locations,
- :mod:`cellbench.catalog`  the dataset catalog (YAML, validated),
- :mod:`cellbench.classes`  the class hierarchy and label mapping,
- :mod:`cellbench.sample`   the in-memory sample model,
- :mod:`cellbench.readers`  one module per annotation / image format,
- :mod:`cellbench.samples`  the sample metadata table,
- :mod:`cellbench.wsi`      whole-slide image access,
- :mod:`cellbench.cli`      the ``cellbench`` command line.
"""

__version__ = "0.1.0"
