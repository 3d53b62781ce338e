"""Errors that reach users.

Every error caused by input names the file (or catalog entry) and the problem, so that the CLI
and the app can show one clear line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class CellbenchError(Exception):
    """Base class of every error cellbench reports to a user."""


class DataError(CellbenchError):
    """A data file is missing, unreadable, malformed or inconsistent.

    Parameters
    ----------
    path
        The offending file.
    problem
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # picklable: it crosses from worker processes
        return type(self), (self.path, self.problem)


class CatalogError(CellbenchError):
    """The catalog YAML is malformed or an entry is invalid.

    Parameters
    ----------
    path
        The catalog file.
    problem
        What is wrong; names the dataset entry and the field where known.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # picklable: it crosses from worker processes
        return type(self), (self.path, self.problem)


class UnknownClassError(DataError):
    """An annotation names a class that the dataset's class set does not define."""
