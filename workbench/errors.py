"""Every error the workbench raises derives from :class:`WorkbenchError`.

Messages follow one rule: say what happened, where (file, row, field, cell, setting) and what to do next.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: catch this to handle any workbench failure."""


class ConfigError(WorkbenchError):
    """A profile, setting or credential is missing or invalid."""


class UnknownModelError(WorkbenchError, KeyError):
    """A model or deployment name is not in the catalog."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BackendError(WorkbenchError):
    """A backend could not be reached or answered something unusable."""


class LocalModelError(BackendError):
    """The embedded local model is not installed or could not be loaded."""


class DataError(WorkbenchError, ValueError):
    """Bad input data: a dataset row, a template, an image, a spec field."""


class BudgetExceeded(WorkbenchError):
    """A run would cost, or has cost, more than its budget allows."""
