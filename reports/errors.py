"""The exceptions of the report generator.

    InoculateError (inoculate.errors)
     └── ReportError
          ├── ReportInputError   a run directory or journal cannot be read (exit 2)
          ├── HistoryError       the history database cannot be opened or queried
          └── RunbookError       a runbook's generated section is malformed; it is left untouched

Messages name the file and, where there is one, the field or line and what was expected.
"""

from __future__ import annotations

from inoculate.errors import InoculateError

__all__ = ["HistoryError", "ReportError", "ReportInputError", "RunbookError"]


class ReportError(InoculateError):
    """Base class of the report generator's errors."""


class ReportInputError(ReportError):
    """A run directory or journal is missing, truncated or not a Chaos Toolkit journal."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class HistoryError(ReportError):
    """The history database could not be opened, written or queried."""


class RunbookError(ReportError):
    """A runbook could not be updated; the file was left as it was."""
