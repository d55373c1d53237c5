"""The history database: every run's score and SLO verdicts, for trends and baselines.

SQLite (stdlib ``sqlite3``) in WAL mode. Every write is one ``BEGIN IMMEDIATE`` transaction
with a generous busy timeout, so concurrent writers (parallel ``inoculate run`` processes,
a gate and a scheduled canary) queue up instead of failing or corrupting the file.
Recording the same run twice replaces its rows (a report can be regenerated).

Path: ``--history``, else ``$INOCULATE_HISTORY``, else ``history.sqlite`` beside the fault
ledger (``$INOCULATE_LEDGER``), else ``.inoculate/history.sqlite``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inoculate.model.errors import HistoryError
from inoculate.model.layout import HISTORY_ENV_VAR, LEDGER_ENV_VAR
from inoculate.reports.trend import SuitePoint, TrendPoint

if TYPE_CHECKING:  # the history stores reports; it never needs to build one
    from inoculate.reports.model import RunReport
    from inoculate.reports.suite import SuiteReport

__all__ = [
    "HISTORY_ENV_VAR",
    "History",
    "RunRecord",
    "default_history_path",
]

DEFAULT_PATH = Path(".inoculate") / "history.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    experiment   TEXT NOT NULL,
    status       TEXT NOT NULL,
    passed       INTEGER NOT NULL,
    score        REAL,
    started_at   REAL,
    ended_at     REAL,
    recorded_at  REAL NOT NULL,
    source       TEXT NOT NULL,
    run_dir      TEXT,
    report       TEXT,
    suite_id     TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, started_at);
CREATE TABLE IF NOT EXISTS slo_verdicts (
    run_id          TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    slo             TEXT NOT NULL,
    sli             TEXT,
    endpoint        TEXT,
    met             INTEGER NOT NULL,
    breach_seconds  INTEGER NOT NULL,
    worst           REAL,
    budget_consumed REAL,
    PRIMARY KEY (run_id, slo)
);
CREATE TABLE IF NOT EXISTS suites (
    suite_id    TEXT PRIMARY KEY,
    score       REAL NOT NULL,
    passed      INTEGER NOT NULL,
    experiments INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    report      TEXT
);
"""


def default_history_path(ledger: Path | None = None) -> Path:
    """Where history lives when no ``--history`` is given (see the module docstring)."""
    if os.environ.get(HISTORY_ENV_VAR):
        return Path(os.environ[HISTORY_ENV_VAR])
    ledger_path = ledger or os.environ.get(LEDGER_ENV_VAR)
    if ledger_path:
        return Path(ledger_path).parent / "history.sqlite"
    return DEFAULT_PATH


@dataclass(frozen=True)
class RunRecord:
    """One run on record."""

    run_id: str
    experiment: str
    status: str
    score: float | None
    started_at: float | None
    recorded_at: float
    source: str
    run_dir: str | None
    report: str | None
    suite_id: str | None

    @property
    def at(self) -> float:
        """When the run started (or, if unknown, when it was recorded)."""
        return self.started_at if self.started_at is not None else self.recorded_at


class History:
    """The history database at ``path`` (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(f"{self.path}: cannot open the history database: {exc}") from exc
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            if write:
                self._prepare(connection)
            yield connection
        except sqlite3.OperationalError as exc:
            if not write and "no such table" in str(exc):
                raise _Empty from exc
            raise HistoryError(f"{self.path}: history database error: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise HistoryError(
                f"{self.path}: not a usable history database ({exc}); expected the SQLite file "
                "inoculate writes"
            ) from exc
        finally:
            connection.close()

    def _prepare(self, connection: sqlite3.Connection) -> None:
        # WAL lets readers go on while one writer writes; the switch is persistent.
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                connection.execute(statement)
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect(write=True) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # ------------------------------------------------------------------ writes

    def record_run(
        self, report: RunReport, report_path: str | None = None, suite_id: str | None = None
    ) -> None:
        """Record (or replace) a run and its SLO verdicts."""
        run = report.run
        with self._transaction() as connection:
            connection.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
            connection.execute(
                "INSERT INTO runs (run_id, experiment, status, passed, score, started_at, "
                "ended_at, recorded_at, source, run_dir, report, suite_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.title,
                    run.status,
                    int(run.status == "passed"),
                    report.score.value,
                    run.started_at,
                    run.ended_at,
                    time.time(),
                    run.kind,
                    str(run.directory),
                    report_path,
                    suite_id,
                ),
            )
            connection.executemany(
                "INSERT INTO slo_verdicts (run_id, slo, sli, endpoint, met, breach_seconds, "
                "worst, budget_consumed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run.run_id,
                        v.outcome.name,
                        v.outcome.sli,
                        v.outcome.endpoint,
                        int(v.met),
                        v.outcome.breach_seconds,
                        v.outcome.worst,
                        v.outcome.budget_consumed,
                    )
                    for v in report.slos
                ],
            )

    def record_suite(self, suite: SuiteReport, report_path: str | None = None) -> None:
        """Record (or replace) a suite: its score and whether it passed."""
        if not suite.suite_id:
            raise HistoryError("a suite needs an id to be recorded")
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO suites (suite_id, score, passed, experiments, "
                "recorded_at, report) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    suite.suite_id,
                    suite.score,
                    int(suite.passed),
                    len(suite.entries),
                    time.time(),
                    report_path,
                ),
            )

    # ------------------------------------------------------------------ queries

    def runs(self, experiment: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The latest runs (of one experiment, or all), newest first."""
        query = (
            "SELECT run_id, experiment, status, score, started_at, recorded_at, source, "
            "run_dir, report, suite_id FROM runs"
        )
        parameters: tuple[object, ...] = ()
        if experiment is not None:
            query += " WHERE experiment = ?"
            parameters = (experiment,)
        query += " ORDER BY COALESCE(started_at, recorded_at) DESC, recorded_at DESC LIMIT ?"
        rows = self._read(query, (*parameters, limit))
        return [RunRecord(*row) for row in rows]

    def trend(self, experiment: str, limit: int = 20) -> list[TrendPoint]:
        """The experiment's last ``limit`` runs, oldest first."""
        records = reversed(self.runs(experiment, limit))
        return [TrendPoint(r.run_id, r.at, r.score, r.status) for r in records]

    def baseline(self, experiment: str, exclude: Sequence[str] = ()) -> RunRecord | None:
        """The last passing run of ``experiment`` on record (ignoring ``exclude`` run ids).

        Runs recorded by a gate count only when that gate passed.
        """
        marks = ",".join("?" for _ in exclude)
        query = (
            "SELECT run_id, experiment, status, score, started_at, recorded_at, source, run_dir, "
            "report, suite_id FROM runs WHERE experiment = ? AND passed = 1 AND score IS NOT NULL "
            # A run of a gate that failed (a regression, say) must not lower the baseline.
            "AND (suite_id IS NULL OR suite_id IN (SELECT suite_id FROM suites WHERE passed = 1))"
            + (f" AND run_id NOT IN ({marks})" if exclude else "")
            + " ORDER BY COALESCE(started_at, recorded_at) DESC, recorded_at DESC LIMIT 1"
        )
        rows = self._read(query, (experiment, *exclude))
        return RunRecord(*rows[0]) if rows else None

    def suite_trend(self, limit: int = 20) -> list[SuitePoint]:
        """The last ``limit`` suites on record, oldest first."""
        rows = self._read(
            "SELECT suite_id, recorded_at, score, passed FROM suites "
            "ORDER BY recorded_at DESC LIMIT ?",
            (limit,),
        )
        return [SuitePoint(s, at, score, bool(passed)) for s, at, score, passed in reversed(rows)]

    def slo_verdicts(self, run_id: str) -> list[dict[str, object]]:
        """The SLO verdicts recorded for one run."""
        rows = self._read(
            "SELECT slo, sli, endpoint, met, breach_seconds, worst, budget_consumed "
            "FROM slo_verdicts WHERE run_id = ? ORDER BY slo",
            (run_id,),
        )
        keys = ("slo", "sli", "endpoint", "met", "breach_seconds", "worst", "budget_consumed")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def _read(self, query: str, parameters: tuple[object, ...]) -> list[tuple[object, ...]]:
        if not self.path.exists():
            return []
        try:
            with self._connect(write=False) as connection:
                return connection.execute(query, parameters).fetchall()
        except _Empty:
            return []


class _Empty(Exception):
    """The database has no tables yet (nothing recorded)."""
