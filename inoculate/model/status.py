"""How a run ends, and the exit code each ending gives: the one table of both.

======================  ====  ====================================================================
status                  exit  meaning
======================  ====  ====================================================================
``passed``              0     the hypothesis held, every SLO met, every fault rolled back
``failed``              1     an SLO or the hypothesis failed, an action or rollback failed, or a
                              fault is still injected
``invalid``             2     bad input: nothing was started, injected or recorded
``interrupted``         3     SIGINT or SIGTERM; rollbacks ran
``aborted``             3     an abort policy, or the system or load could not start; rollbacks ran
(skipped)               4     a guard kept the run from starting (too little error budget left):
                              nothing was started or injected, no run directory
======================  ====  ====================================================================
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["ExitCode", "RunStatus", "SliDataStatus"]


class ExitCode(IntEnum):
    """The process exit codes of ``inoculate`` commands."""

    PASSED = 0
    FAILED = 1
    INVALID = 2
    INTERRUPTED = 3
    SKIPPED = 4


class RunStatus(StrEnum):
    """The verdict of one run."""

    PASSED = "passed"
    FAILED = "failed"
    INVALID = "invalid"
    INTERRUPTED = "interrupted"
    ABORTED = "aborted"

    @property
    def exit_code(self) -> ExitCode:
        """The exit code of a command whose run ended so."""
        return _EXIT_CODES[self]

    @property
    def stopped_early(self) -> bool:
        """Interrupted or aborted: the run did not get to its verdict."""
        return self in (RunStatus.INTERRUPTED, RunStatus.ABORTED)


_EXIT_CODES = {
    RunStatus.PASSED: ExitCode.PASSED,
    RunStatus.FAILED: ExitCode.FAILED,
    RunStatus.INVALID: ExitCode.INVALID,
    RunStatus.INTERRUPTED: ExitCode.INTERRUPTED,
    RunStatus.ABORTED: ExitCode.INTERRUPTED,
}


class SliDataStatus(StrEnum):
    """Whether an SLI source had data for one evaluation; anything but ``ok`` is missing data,
    and missing data never meets an SLO."""

    OK = "ok"
    NO_SERIES = "no series"  # the selector matched no series (or a named job has no target)
    QUERY_ERROR = "query error"  # the server refused the query; its error text is kept
    TIMEOUT = "timeout"  # no answer within the client's timeout
    UNREACHABLE = "unreachable"  # refused, unknown host, or not a Prometheus query API
    SCRAPE_FAILED = "scrape failed"  # ``up == 0`` for a scrape job the SLI depends on

    @property
    def missing(self) -> bool:
        """True for every status but ``ok``."""
        return self is not SliDataStatus.OK
