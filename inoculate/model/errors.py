"""The exceptions of inoculate: one root, every library error translated into it at the boundary.

    InoculateError
     ├── ExperimentInvalid      bad input: names the file, the field and what was expected (exit 2)
     ├── InputFileError         a file is too large, not UTF-8 or nested too deeply to read
     ├── RunSetupError          the system or the load could not be started (exit 3)
     ├── EmbeddedSystemError    an embedded system could not be started, found or driven
     ├── LoadError              the load could not be started, observed or stopped
     │    └── LocustFailedError     Locust exited or produced no sample; carries its log's tail
     ├── FaultError             a fault could not be injected or reverted; says why and what to do
     │    ├── BlastRadiusError      the blast radius is malformed or selects nothing (a ValueError)
     │    └── (per target: DockerUnavailable, NetworkFaultError, KernelFaultError ...)
     ├── LedgerError            the fault ledger cannot be read or written (exit 2)
     ├── SliSourceUnreachable   an SLI source (Prometheus) gave no answer when asked before a run
     ├── RunSkipped             a guard kept the run from starting; nothing started (exit 4)
     ├── LockHeld               another canary holds the scope's lock; says who and since when
     ├── ProbeError             a steady-state probe could not evaluate (a failed probe)
     │    ├── RunDirectoryError     configuration key, inoculate.json or sli.jsonl missing
     │    └── UnknownSloError       a probe names an SLO the run does not define
     └── ReportError            the report generator's errors
          ├── ReportInputError      a run directory or journal cannot be read (exit 2)
          ├── HistoryError          the history database cannot be opened or queried
          └── RunbookError          a runbook's generated section is malformed; left untouched
    RunInterrupted (KeyboardInterrupt)
                                SIGINT, SIGTERM or an SLO abort during a run (exit 3)

``RunInterrupted`` derives from ``KeyboardInterrupt`` on purpose: chaoslib turns every
``Exception`` raised inside a python activity into a mere activity failure, so a signal
raised as an ``Exception`` is swallowed and the run goes on. A ``BaseException`` reaches
chaoslib's runner loop, which marks the run interrupted and plays the rollbacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from inoculate.model.limits import MAX_LISTED_PROBLEMS, MAX_PROBLEM_CHARS

__all__ = [
    "BlastRadiusError",
    "EmbeddedSystemError",
    "ExperimentInvalid",
    "FaultError",
    "FieldError",
    "HistoryError",
    "InoculateError",
    "InputFileError",
    "LedgerError",
    "LoadError",
    "LockHeld",
    "LocustFailedError",
    "ProbeError",
    "ReportError",
    "ReportInputError",
    "RunDirectoryError",
    "RunInterrupted",
    "RunSetupError",
    "RunSkipped",
    "RunbookError",
    "SliSourceUnreachable",
    "UnknownSloError",
]


class InoculateError(Exception):
    """Base class of every error inoculate raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One problem in an input file: where it is and what was expected there."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ExperimentInvalid(InoculateError):
    """An input file (experiment, var file ...) is invalid; nothing was started or injected.

    The message lists at most ``MAX_LISTED_PROBLEMS`` problems, each cut to
    ``MAX_PROBLEM_CHARS``: a file with a hundred thousand mistakes, or one that quotes a
    megabyte of itself, still gets an error a person can read. ``errors`` keeps them all.
    """

    def __init__(self, source: str, errors: list[FieldError], what: str = "experiment") -> None:
        self.source = source
        self.errors = errors
        shown = [f"  {source}: {_shortened(str(error))}" for error in errors[:MAX_LISTED_PROBLEMS]]
        if len(errors) > MAX_LISTED_PROBLEMS:
            shown.append(f"  ... and {len(errors) - MAX_LISTED_PROBLEMS} more problem(s)")
        lines = "\n".join(shown)
        super().__init__(f"{source}: invalid {what} ({len(errors)} problem(s))\n{lines}")


def _shortened(text: str) -> str:
    if len(text) <= MAX_PROBLEM_CHARS:
        return text
    return f"{text[: MAX_PROBLEM_CHARS - 25]}... ({len(text):,} characters)"


class InputFileError(InoculateError):
    """A file cannot be read as bounded input: too large, not UTF-8 text, nested too deeply
    or holding too many values. ``problem`` completes a sentence about the file ("is not
    UTF-8 text ...; expected UTF-8"); callers turn it into their own error."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class RunSetupError(InoculateError):
    """The system under test or the load could not be brought up."""


class EmbeddedSystemError(InoculateError):
    """The embedded system could not be started, found or driven."""


class LoadError(InoculateError):
    """The load could not be started, observed or stopped as asked."""


class LocustFailedError(LoadError):
    """Locust exited, or produced no SLI sample in time; the message ends with its log's tail."""


class FaultError(InoculateError):
    """A fault could not be injected or reverted; the message says why and what to do."""


class BlastRadiusError(FaultError, ValueError):
    """The blast radius is malformed, or it selects nothing; the message says which."""


class LedgerError(InoculateError):
    """The fault ledger cannot be read or written."""


class SliSourceUnreachable(InoculateError):
    """An SLI source (a Prometheus server) could not be asked: refused, unknown host, timeout
    or not its query API. Before a run this is not the input's fault, unlike a query that does
    not parse (``ExperimentInvalid``); the message names the URL and what happened."""


class ProbeError(InoculateError):
    """A steady-state probe could not evaluate; chaoslib records it as a failed probe."""


class RunDirectoryError(ProbeError):
    """The run directory, its SLO specs or its SLI samples cannot be found or read."""


class UnknownSloError(ProbeError):
    """A probe asked for an SLO name that the run does not define."""


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


class RunSkipped(InoculateError):
    """A guard kept the run from starting (e.g. too little error budget left): nothing was
    started or injected. The message says which guard and why."""


class LockHeld(InoculateError):
    """Another canary holds the lock of this scope: one canary per scope runs at a time.

    ``holder`` names who holds it (``user@host pid N`` for a file lock, the ``Lease``'s
    ``holderIdentity``), ``since`` when it took it (ISO 8601, None when unknown); ``detail``
    completes the message (e.g. when an unrenewed ``Lease`` expires)."""

    def __init__(self, scope: str, holder: str, since: str | None, detail: str = "") -> None:
        self.scope = scope
        self.holder = holder
        self.since = since
        when = f" since {since}" if since else ""
        more = f" ({detail})" if detail else ""
        super().__init__(
            f"canary scope {scope!r} is locked by {holder}{when}{more}: "
            "one canary per scope runs at a time"
        )


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (signal or abort policy); rollbacks still run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
