"""The exceptions of inoculate.

    InoculateError
     ├── ExperimentInvalid      bad input: names the file, the field and what was expected (exit 2)
     ├── RunSetupError          the system or the load could not be started (exit 3)
     └── LedgerReplayError      outstanding faults could not be reverted (exit 3)
    RunInterrupted (KeyboardInterrupt)
                                SIGINT, SIGTERM or an SLO abort during a run (exit 3)

``RunInterrupted`` derives from ``KeyboardInterrupt`` on purpose: chaoslib turns every
``Exception`` raised inside a python activity into a mere activity failure, so a signal
raised as an ``Exception`` is swallowed and the run goes on. A ``BaseException`` reaches
chaoslib's runner loop, which marks the run interrupted and plays the rollbacks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ExperimentInvalid",
    "FieldError",
    "InoculateError",
    "LedgerReplayError",
    "RunInterrupted",
    "RunSetupError",
]


class InoculateError(Exception):
    """Base class of every error inoculate raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One problem in an experiment: where it is and what was expected there."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ExperimentInvalid(InoculateError):
    """An experiment file is invalid; nothing was started or injected."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {source}: {error}" for error in errors)
        super().__init__(f"{source}: invalid experiment ({len(errors)} problem(s))\n{lines}")


class RunSetupError(InoculateError):
    """The system under test or the load could not be brought up."""


class LedgerReplayError(InoculateError):
    """Faults left by an earlier run are still injected and could not be reverted."""


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (signal or abort policy); rollbacks still run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
