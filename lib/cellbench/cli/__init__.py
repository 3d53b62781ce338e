"""Face: the ``cellbench`` command line, one module per command group.

:mod:`~cellbench.cli.main` assembles the app; :mod:`~cellbench.cli.common` holds the one-line
error wrapper and output helpers. A face: it may import every subpackage, and nothing in the
library imports it.
"""

from cellbench.cli.main import app, main

__all__ = ["app", "main"]
