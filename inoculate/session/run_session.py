"""One run of an experiment: system, load, SLO monitor, journal and verdict.

A :class:`RunSession` is created by our Chaos Toolkit control (``inoculate.extensions.control``)
and subscribes to chaoslib's run events, so the same code serves ``inoculate run`` and a
plain ``chaos run``. It fixes what chaoslib 1.44 gets wrong (README, "Chaos Toolkit defects"):

- the journal is rewritten atomically after every activity, without secrets;
- SLO breaches seen during the method count, a failed before-state or a failed action
  fails the run (status and ``deviated`` are corrected before the journal is written);
- SIGINT/SIGTERM interrupt even a running python activity, and rollbacks still run;
- faults this run recorded in the ledger but that no rollback reverted are reverted
  before the system stops, and faults of dead earlier runs are reverted before it starts;
- an activity's ``timeout`` is enforced for python providers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.run import RunEventHandler
from chaoslib.types import Activity, Experiment, Journal, Run

from inoculate.experiment.spec import InoculateSpec, ValidationError, parse_extension
from inoculate.faults.ledger import ledger_from_configuration
from inoculate.faults.protocol import read_timeline, revert_outstanding
from inoculate.load.driver import LocustLoad
from inoculate.load.spec import LoadSpec
from inoculate.model.errors import EmbeddedSystemError, LoadError
from inoculate.model.files import write_json_atomic
from inoculate.model.journal import failed_activities, hypothesis_met
from inoculate.model.layout import (
    BASE_DIR_CONFIG_KEY,
    JOURNAL_FILE,
    LEDGER_CONFIG_KEY,
    RUN_DIR_CONFIG_KEY,
    RUN_ID_CONFIG_KEY,
    RUNS_DIR_ENV_VAR,
    SAMPLES_FILE,
    SPEC_FILE,
    SUMMARY_FILE,
    SYSTEM_CONFIG_KEY,
    SYSTEM_DIR,
    SYSTEM_DIR_CONFIG_KEY,
    new_run_dir,
)
from inoculate.model.processes import process_status
from inoculate.model.secrets import (
    SecretFilter,
    forget_secrets,
    remember_secrets,
    scrub,
    secret_values,
)
from inoculate.model.status import RunStatus
from inoculate.model.summary import RunSummary
from inoculate.model.verdict import chaoslib_interruption
from inoculate.session.interrupts import InterruptGuard
from inoculate.session.summarize import RunFacts, summarize
from inoculate.session.timeouts import ActivityTimer
from inoculate.steady_state.monitor import Evaluation, SloMonitor
from inoculate.steady_state.slo import LatencySlo
from inoculate.steady_state.store import SliStore
from inoculate.systems.registry import RunningSystem, embedded_system

__all__ = ["RunSession"]

logger = logging.getLogger("inoculate")
FIRST_SAMPLE_TIMEOUT_S = 30.0


class RunSession(RunEventHandler):
    """The state of one run, driven by chaoslib's events and our control's hooks."""

    def __init__(self, experiment: Experiment, configuration: dict[str, Any]) -> None:
        self.experiment = experiment
        self.configuration = configuration
        self.title = str(experiment.get("title", "experiment"))
        self.spec, self.spec_error = _parse_spec(experiment, configuration)
        self.run_id = str(configuration.get(RUN_ID_CONFIG_KEY) or uuid.uuid4().hex[:12])
        self.base_dir = Path(configuration.get(BASE_DIR_CONFIG_KEY) or Path.cwd())
        self.run_dir = Path(
            configuration.get(RUN_DIR_CONFIG_KEY)
            or new_run_dir(self.title, Path(os.environ.get(RUNS_DIR_ENV_VAR, "runs")))
        ).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        configuration[RUN_DIR_CONFIG_KEY] = str(self.run_dir)
        configuration[RUN_ID_CONFIG_KEY] = self.run_id
        self.ledger = ledger_from_configuration(configuration)
        configuration.setdefault(LEDGER_CONFIG_KEY, str(self.ledger.path.resolve()))
        self.guard = InterruptGuard()
        self.timer = ActivityTimer()
        self.system: RunningSystem | None = None
        self.load: LocustLoad | None = None
        self.monitor: SloMonitor | None = None
        self.setup_error: str | None = None
        self.method_window: list[float] = []
        self.reverted_at_start: list[dict[str, Any]] = []
        self.reverted_by_safety_net: list[dict[str, Any]] = []
        self.faults_left: list[str] = []
        self.system_at_end: dict[str, str] = {}
        self.summary: RunSummary | None = None
        self._journal: Journal | None = None
        self._secrets: set[str] = secret_values(experiment.get("secrets"))
        self._journal_lock = threading.Lock()
        self._torn_down = False
        self._log_filter: SecretFilter | None = None
        self._write_spec()

    # ------------------------------------------------------------------ control hooks

    def bring_up(self) -> None:
        """Before the experiment: replay dead runs' faults, start system, load and monitor."""
        if self.spec_error:
            raise InterruptExecution(self.spec_error)
        self.guard.install()
        if self.guard.reason is not None:
            # A signal arrived while chaoslib was setting up: nothing was started, stop now.
            raise InterruptExecution(self.guard.reason)
        self.reverted_at_start = [o.to_json() for o in self._replay_dead_runs()]
        if self.spec is None:
            return
        try:
            self._start_system(self.spec)
            self._start_load(self.spec)
        except InterruptExecution as exc:
            self.setup_error = str(exc)
            raise

    def tear_down(self, journal: Journal | None) -> None:
        """After the rollbacks: settle, revert leftover faults, stop everything, judge."""
        if self._torn_down:
            return
        self._torn_down = True
        self.guard.shield()
        try:
            if self.spec is not None and self.spec.settle_s and self.load is not None:
                time.sleep(self.spec.settle_s)
            self._revert_leftovers()
            self.system_at_end = self._system_snapshot()
        finally:
            self._stop_components()
        self.summary = self._judge(journal or self._journal or {})
        write_json_atomic(self.run_dir / SUMMARY_FILE, scrub(self.summary.to_json(), self._secrets))
        if journal is not None:
            _amend_journal(journal, self.summary)

    # ------------------------------------------------------------------ chaoslib events

    def started(self, experiment: Experiment, journal: Journal) -> None:
        """The journal exists: keep it and write it."""
        self._journal = journal
        self._write_journal()

    def running(self, experiment, journal, configuration, secrets, schedule, settings) -> None:  # type: ignore[no-untyped-def]
        """The first event after our control is configured (chaoslib 1.44 fires ``started``
        before): keep the journal and write it, without the resolved secrets."""
        self._secrets |= secret_values(secrets)
        # From here every fault this run records, and every line logged, is scrubbed.
        remember_secrets(self.run_id, self._secrets)
        self._filter_logs()
        self._write_spec()
        self._journal = journal
        self._write_journal()

    def hypothesis_before_completed(
        self, experiment: Experiment, state: Any, journal: Journal
    ) -> None:
        """Write the journal with the before-state."""
        self._write_journal()

    def hypothesis_after_completed(
        self, experiment: Experiment, state: Any, journal: Journal
    ) -> None:
        """Write the journal with the after-state."""
        self._write_journal()

    def start_method(self, experiment: Experiment) -> None:
        """The fault window of the run opens: breaches from now on fail the run."""
        self.method_window = [time.time()]

    def method_completed(self, experiment: Experiment, state: Any = None) -> None:
        """The method ended (or was interrupted)."""
        if len(self.method_window) == 1:
            self.method_window.append(time.time())

    def start_rollbacks(self, experiment: Experiment) -> None:
        """From here on a signal must not cut the rollbacks short."""
        self.method_completed(experiment)
        self.guard.shield()

    def start_activity(self, activity: Activity) -> None:
        """Arm the activity's timeout (chaoslib validates it but never enforces it)."""
        self.timer.arm(activity)

    def activity_completed(self, activity: Activity, run: Run) -> None:
        """Disarm the timeout and rewrite the journal with this activity's result."""
        self.timer.disarm(activity, run)
        self._write_journal()

    def interrupted(self, experiment: Experiment, journal: Journal) -> None:
        """chaoslib saw an interruption (InterruptExecution): close the method window."""
        self.method_completed(experiment)

    def signal_exit(self) -> None:
        """chaoslib saw a signal (KeyboardInterrupt/SystemExit): close the method window."""
        self.method_completed(self.experiment)

    def finish(self, journal: Journal) -> None:
        """Last event: make sure everything stopped, then write the final journal."""
        self._journal = journal
        self.tear_down(journal)
        scrubbed = scrub(journal, self._secrets)
        # `chaos run` writes this same dict after we return: scrub it in place too.
        journal.clear()
        journal.update(scrubbed)
        try:
            self._write_journal()
        finally:
            # Only now: until the final journal is on disk a signal must not stop us.
            self.guard.restore()
            forget_secrets(self.run_id)
            self._unfilter_logs()

    # ------------------------------------------------------------------ internals

    def _start_system(self, spec: InoculateSpec) -> None:
        if spec.system is None:
            return
        system = embedded_system(spec.system.embedded)
        state_dir = self.run_dir / SYSTEM_DIR
        self.configuration[SYSTEM_CONFIG_KEY] = system.name
        self.configuration[SYSTEM_DIR_CONFIG_KEY] = str(state_dir)
        logger.info("starting the embedded %s system in %s", system.name, state_dir)
        try:
            self.system = system.start(
                state_dir, spec.system.knobs_model(), spec.system.start_timeout_s
            )
        except EmbeddedSystemError as exc:
            raise InterruptExecution(str(exc)) from exc

    def _start_load(self, spec: InoculateSpec) -> None:
        if spec.load is None:
            return
        host = spec.load.host or (self.system.url if self.system else None)
        if not host:
            raise InterruptExecution("load has no target: set `load.host` or an embedded `system`")
        load_spec = spec.load.model_copy(
            update={"locustfile": str(spec.resolve_path(spec.load.locustfile, self.base_dir))}
        )
        self.load = LocustLoad()
        thresholds = [slo.threshold_ms for slo in spec.slos if isinstance(slo, LatencySlo)]
        try:
            self.load.start(load_spec, host, self.run_dir, latency_thresholds_ms=thresholds)
            self.load.wait_first_sample(FIRST_SAMPLE_TIMEOUT_S)
        except LoadError as exc:
            raise InterruptExecution(f"the load did not start: {exc}") from exc
        logger.info(
            "load running (%s); warming up %.0fs", _load_words(load_spec), load_spec.warmup_s
        )
        if spec.slos:
            self.monitor = SloMonitor(
                spec.slos, SliStore(self.run_dir / SAMPLES_FILE), on_evaluation=self._on_evaluation
            )
            self.monitor.start()
        time.sleep(load_spec.warmup_s)

    def _on_evaluation(self, evaluation: Evaluation) -> None:
        if self.spec is None or self.spec.on_breach != "abort" or len(self.method_window) != 1:
            return
        if evaluation.t + 1 > self.method_window[0] and evaluation.breached:
            names = ", ".join(v.name for v in evaluation.breached)
            self.guard.request_abort(f"SLO breached during the method: {names}")

    def _replay_dead_runs(self) -> list[Any]:
        outcomes = revert_outstanding(self.ledger, matches=lambda record: not record.owner_alive())
        for outcome in outcomes:
            logger.warning("reverted a fault left by a dead run: %s", outcome.to_json())
        return outcomes

    def _revert_leftovers(self) -> None:
        outcomes = revert_outstanding(self.ledger, run_id=self.run_id)
        for outcome in outcomes:
            logger.warning("fault not reverted by any rollback; reverted now: %s", outcome.detail)
        self.reverted_by_safety_net = [o.to_json() for o in outcomes]
        self.faults_left = [
            r.description or r.id for r in self.ledger.outstanding(run_id=self.run_id)
        ]

    def _system_snapshot(self) -> dict[str, str]:
        """OS status of every system process once rollbacks ran: evidence nothing stayed broken."""
        if self.spec is None or self.spec.system is None or self.system is None:
            return {}
        system = embedded_system(self.spec.system.embedded)
        state_dir = Path(self.configuration[SYSTEM_DIR_CONFIG_KEY])
        try:
            instances = system.all_processes(state_dir)
        except EmbeddedSystemError as exc:
            return {"error": str(exc)}
        return {sp.instance: process_status(sp.pid) if sp.pid else sp.state for sp in instances}

    def _stop_components(self) -> None:
        for name, stop in (
            ("monitor", self.monitor.stop if self.monitor else None),
            ("load", self.load.stop if self.load else None),
            ("system", self.system.stop if self.system else None),
        ):
            if stop is None:
                continue
            try:
                stop()
            except Exception:  # one component failing to stop must not keep the others running
                logger.exception("stopping the %s failed", name)

    def _judge(self, journal: Mapping[str, Any]) -> RunSummary:
        samples = SliStore(self.run_dir / SAMPLES_FILE)
        samples.refresh()
        steady = journal.get("steady_states") or {}
        facts = RunFacts(
            title=self.title,
            slos=list(self.spec.slos) if self.spec else [],
            evaluations=self.monitor.evaluations() if self.monitor else [],
            samples=samples.samples(),
            fault_events=read_timeline(self.run_dir),
            method_window=_window(self.method_window),
            hypothesis_before=hypothesis_met(steady.get("before")),
            hypothesis_after=hypothesis_met(steady.get("after")),
            failed_activities=failed_activities(journal.get("run")),
            failed_rollbacks=failed_activities(journal.get("rollbacks")),
            faults_left=self.faults_left,
            interruption=self.guard.reason or chaoslib_interruption(journal.get("status")),
            journal_status=str(journal.get("status") or "") or None,
            setup_error=self.setup_error,
            recovery_objective_s=self.spec.recovery_objective_s if self.spec else None,
            load=_load_facts(self.spec.load) if self.spec and self.spec.load else None,
            extra={
                "run_id": self.run_id,
                "run_dir": str(self.run_dir),
                "journal": JOURNAL_FILE,
                "samples_file": SAMPLES_FILE,
                "reverted_at_start": self.reverted_at_start,
                "reverted_by_safety_net": self.reverted_by_safety_net,
                "runbook": self.spec.runbook if self.spec else None,
                "system_at_end": self.system_at_end,
            },
        )
        return summarize(facts)

    def _write_journal(self) -> None:
        if self._journal is None:
            return
        with self._journal_lock:
            document = scrub(self._journal, self._secrets)
            if not document.get("status"):
                # chaoslib leaves the status empty until the end: say the run was still on,
                # so a journal read after a crash is never taken for a finished run.
                document["status"] = "running"
            write_json_atomic(self.run_dir / JOURNAL_FILE, document)

    def _write_spec(self) -> None:
        write_json_atomic(self.run_dir / SPEC_FILE, scrub(self._spec_json(), self._secrets))

    def _filter_logs(self) -> None:
        # chaoslib logs an activity's error (a pattern, a URL: a secret) and under `chaos run`
        # writes chaostoolkit.log: every handler of the run's loggers scrubs what it emits.
        self._unfilter_logs()
        self._log_filter = SecretFilter(self._secrets)
        for handler in _run_log_handlers():
            handler.addFilter(self._log_filter)

    def _unfilter_logs(self) -> None:
        if self._log_filter is not None:
            for handler in _run_log_handlers():
                handler.removeFilter(self._log_filter)
            self._log_filter = None

    def _spec_json(self) -> dict[str, Any]:
        if self.spec is None:
            return {"slos": []}
        return self.spec.model_dump(mode="json")


def _run_log_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(name) for name in ("chaostoolkit", "inoculate", "")]
    return [handler for log in loggers for handler in log.handlers]


def _parse_spec(
    experiment: Experiment, configuration: dict[str, Any]
) -> tuple[InoculateSpec | None, str | None]:
    try:
        return parse_extension(experiment, configuration), None
    except ValidationError as exc:
        return None, f"invalid inoculate extension: {exc}"


def _load_facts(load: LoadSpec) -> dict[str, Any]:
    """The load as the summary describes it (``LoadSummary``, without the counts)."""
    if load.model == "open":
        return {"model": "open", "rate_rps": load.rate_rps, "max_in_flight": load.in_flight_bound}
    return {
        "model": "closed",
        "users": load.users,
        "expected_interval_ms": load.expected_interval_ms,
    }


def _load_words(load: LoadSpec) -> str:
    if load.model == "open":
        return f"open model, {load.rate_rps:g} arrivals/s, at most {load.in_flight_bound} in flight"
    return f"{load.users} users"


def _window(marks: list[float]) -> tuple[float, float] | None:
    if not marks:
        return None
    return (marks[0], marks[1] if len(marks) > 1 else time.time())


def _amend_journal(journal: Journal, summary: RunSummary) -> None:
    """Make the journal tell the truth chaoslib 1.44 leaves out (see ARCHITECTURE.md)."""
    journal["inoculate"] = summary.to_json()
    if summary.status is RunStatus.FAILED:
        breached = any(slo.breached_during_method for slo in summary.slos)
        if breached or summary.hypothesis.after is False:
            journal["deviated"] = True
        broken = summary.failed_activities or summary.failed_rollbacks or summary.faults_left
        if summary.hypothesis.before is False or broken:
            journal["status"] = "failed"
    elif summary.status.stopped_early:
        journal["status"] = str(summary.status)
