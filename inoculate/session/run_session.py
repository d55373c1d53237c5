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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.run import EventHandlerRegistry, RunEventHandler, run_deviation_validation_hypothesis
from chaoslib.types import Activity, Experiment, Journal, Run

from inoculate.canary.kill_switch import KillSwitchWatcher
from inoculate.canary.kill_switch import engaged as kill_switch_engaged
from inoculate.experiment.references import (
    known_names,
    secret_references,
    undefined_references,
)
from inoculate.experiment.spec import (
    InoculateSpec,
    ValidationError,
    find_extension,
    locustfile_problem,
    parse_extension,
)
from inoculate.faults.ledger import ledger_from_configuration
from inoculate.faults.protocol import read_timeline, revert_outstanding
from inoculate.load.driver import LocustLoad
from inoculate.load.spec import LoadSpec
from inoculate.model.errors import EmbeddedSystemError, ExperimentInvalid, LoadError
from inoculate.model.files import write_json_atomic
from inoculate.model.journal import failed_activities, hypothesis_met, slo_verdicts
from inoculate.model.layout import (
    AFTER_STATE_CONFIG_KEY,
    JOURNAL_FILE,
    LEDGER_CONFIG_KEY,
    OPEN_SECOND_FILE,
    PROMETHEUS_FILE,
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
    scrub_text,
    secret_values,
)
from inoculate.model.status import RunStatus
from inoculate.model.summary import RunSummary
from inoculate.model.verdict import chaoslib_interruption
from inoculate.session.aftermath import (
    Restoration,
    check_every_fault,
    settle_leftovers,
    wait_fresh_windows,
)
from inoculate.session.base_dir import base_dir_of_run
from inoculate.session.figures import PerSecondFigures
from inoculate.session.interrupts import InterruptGuard
from inoculate.session.live_events import LiveEvents
from inoculate.session.summarize import RunFacts, summarize
from inoculate.session.timeouts import ActivityTimer
from inoculate.steady_state.guards import burn_rate_at, burn_rate_guard, guarded
from inoculate.steady_state.monitor import Evaluation, SloMonitor
from inoculate.steady_state.prometheus import PrometheusClient
from inoculate.steady_state.server_side import (
    SERVER_SIDE_SETTLE_S,
    PrometheusMonitor,
    server_side_slos,
)
from inoculate.steady_state.slo import NEVER_CALLED, LatencySlo
from inoculate.steady_state.store import SliStore
from inoculate.systems.registry import RunningSystem, embedded_system

__all__ = ["RunSession"]

logger = logging.getLogger("inoculate")
FIRST_SAMPLE_TIMEOUT_S = 30.0
# How long past twice the longest SLO window the before- and after-state may wait for a
# window of fresh seconds (after the warm-up, after the rollbacks).
AFTER_STATE_MARGIN_S = 10.0


class RunSession(RunEventHandler):
    """The state of one run, driven by chaoslib's events and our control's hooks."""

    def __init__(self, experiment: Experiment, configuration: dict[str, Any]) -> None:
        self.experiment = experiment
        self.configuration = configuration
        self.title = str(experiment.get("title", "experiment"))
        self.base = base_dir_of_run(configuration, experiment)
        self.base_dir = self.base.path
        self.spec, self.spec_error = _parse_spec(experiment, configuration, self.base_dir)
        self.run_id = str(configuration.get(RUN_ID_CONFIG_KEY) or uuid.uuid4().hex[:12])
        self.run_dir = Path(
            configuration.get(RUN_DIR_CONFIG_KEY)
            or new_run_dir(self.title, Path(os.environ.get(RUNS_DIR_ENV_VAR, "runs")))
        ).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.plain_chaos_run = not configuration.get(RUN_DIR_CONFIG_KEY)
        if self.plain_chaos_run:  # nobody else will say where the files went
            _log_through_chaostoolkit()
            logger.info(
                "this run's files go to %s (%s=DIR puts them elsewhere); paths of the "
                "inoculate block start at %s (%s)",
                self.run_dir,
                RUNS_DIR_ENV_VAR,
                self.base.path,
                self.base.chosen_by,
            )
        configuration[RUN_DIR_CONFIG_KEY] = str(self.run_dir)
        configuration[RUN_ID_CONFIG_KEY] = self.run_id
        self.ledger = ledger_from_configuration(configuration)
        configuration.setdefault(LEDGER_CONFIG_KEY, str(self.ledger.path.resolve()))
        self.guard = InterruptGuard()
        self.timer = ActivityTimer()
        self.system: RunningSystem | None = None
        self.load: LocustLoad | None = None
        self.monitor: SloMonitor | None = None
        self.server_monitor: PrometheusMonitor | None = None
        self.burn_rates: dict[str, tuple[int, int, float | None, float | None]] = {}
        self.setup_error: str | None = None
        self.method_window: list[float] = []
        self.reverted_at_start: list[dict[str, Any]] = []
        self.reverted_by_safety_net: list[dict[str, Any]] = []
        self.restoration: dict[str, Restoration] = {}
        self.rollbacks_ended_at: float | None = None
        self.before_state_window: dict[str, Any] | None = None
        self.after_state_window: dict[str, Any] | None = None
        self.event_registry: Any = None
        self._resolved_secrets: Any = None
        self.faults_left: list[str] = []
        self.system_at_end: dict[str, str] = {}
        self.summary: RunSummary | None = None
        self._journal: Journal | None = None
        self._secrets: set[str] = secret_values(experiment.get("secrets"))
        self._journal_lock = threading.Lock()
        self._torn_down = False
        self._warned_never_called: set[str] = set()
        self._log_filter: SecretFilter | None = None
        self.figures: PerSecondFigures | None = None
        self.kill_switch: KillSwitchWatcher | None = None
        self.deadline: threading.Timer | None = None
        self.live = LiveEvents(self.run_dir)
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
        self.live.phase("before")
        if self.spec is None:
            return
        self._check_paths(self.spec)
        self._pull_levers_on(self.spec)
        try:
            self._start_system(self.spec)
            self._start_server_monitor(self.spec)
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
            ended = self.rollbacks_ended_at or time.time()
            self.reverted_by_safety_net, self.faults_left = settle_leftovers(
                self.ledger, self.run_id, ended
            )
            if journal is not None and self._judges_after_state(journal):
                self.live.phase("after")
                self._after_state(journal, ended)
            elif self.spec is not None and self.spec.settle_s and self.load is not None:
                time.sleep(self.spec.settle_s)
            self.restoration = check_every_fault(self.ledger, self.run_dir)
            self.system_at_end = self._system_snapshot()
            self.burn_rates = self._burn_rates_around_the_method()
        finally:
            self._stop_components()
        self.summary = self._judge(journal or self._journal or {})
        write_json_atomic(self.run_dir / SUMMARY_FILE, scrub(self.summary.to_json(), self._secrets))
        self.live.phase("verdict", status=str(self.summary.status))
        self.live.close()
        if journal is not None:
            _amend_journal(journal, self.summary)
        if self.plain_chaos_run:  # `inoculate run` prints its own verdict
            reasons = scrub_text("; ".join(self.summary.reasons), self._secrets)
            logger.info(
                "inoculate's verdict: %s%s (%s)",
                self.summary.status,
                f": {reasons}" if reasons else "",
                self.run_dir / SUMMARY_FILE,
            )

    # ------------------------------------------------------------------ chaoslib events

    def started(self, experiment: Experiment, journal: Journal) -> None:
        """The journal exists: keep it and write it."""
        self._journal = journal
        self._write_journal()

    def running(self, experiment, journal, configuration, secrets, schedule, settings) -> None:  # type: ignore[no-untyped-def]
        """The first event after our control is configured (chaoslib 1.44 fires ``started``
        before): keep the journal and write it, without the resolved secrets."""
        self._secrets |= secret_values(secrets)
        self._resolved_secrets = secrets
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
        self.live.phase("method")

    def method_completed(self, experiment: Experiment, state: Any = None) -> None:
        """The method ended (or was interrupted)."""
        if len(self.method_window) == 1:
            self.method_window.append(time.time())

    def start_rollbacks(self, experiment: Experiment) -> None:
        """From here on a signal must not cut the rollbacks short."""
        self.method_completed(experiment)
        self.guard.shield()
        self.live.phase("rollbacks")

    def rollbacks_completed(self, experiment: Experiment, journal: Journal) -> None:
        """The rollbacks phase ended: a fault no reverter settled ends its window here."""
        self.rollbacks_ended_at = time.time()
        self._write_journal()

    def start_activity(self, activity: Activity) -> None:
        """Arm the activity's timeout (chaoslib validates it but never enforces it)."""
        self.live.activity(activity, "start")
        self.timer.arm(activity)

    def activity_completed(self, activity: Activity, run: Run) -> None:
        """Disarm the timeout and rewrite the journal with this activity's result."""
        self.timer.disarm(activity, run)
        self.live.activity(activity, "end")
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

    def _check_paths(self, spec: InoculateSpec) -> None:
        # `inoculate run` checked them at validation; a plain `chaos run` did not.
        problem = locustfile_problem(spec.load.locustfile, self.base_dir) if spec.load else None
        if problem:
            self.setup_error = f"load.locustfile: {problem}; {self.base.how_to_change()}"
            raise InterruptExecution(self.setup_error)

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

    def _start_server_monitor(self, spec: InoculateSpec) -> None:
        """Read the SLOs' Prometheus sides every second from now on."""
        sides = server_side_slos(spec.slos)
        if not sides or spec.prometheus is None:
            return
        client = PrometheusClient(spec.prometheus)
        policy = spec.guards.burn_rate if spec.guards is not None else None
        self.server_monitor = PrometheusMonitor(
            sides,
            client,
            self.run_dir / PROMETHEUS_FILE,
            on_evaluation=self._on_evaluation,
            guard=burn_rate_guard(client, sides, policy) if policy is not None else None,
            on_trip=self._guard_tripped,
            # From the method's start to its end: when faults may be in place. Before it,
            # the steady state judges the same SLOs (and the run's own load may not have
            # made a series yet).
            guard_armed=lambda: len(self.method_window) == 1,
        )
        self.server_monitor.start()
        logger.info("reading %d SLO(s) from Prometheus at %s", len(sides), spec.prometheus.url)

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
        self.figures = PerSecondFigures(self.run_dir, spec.slos).start()
        if spec.slos:
            store = SliStore(self.run_dir / SAMPLES_FILE, open_path=self.run_dir / OPEN_SECOND_FILE)
            self.monitor = SloMonitor(spec.slos, store, on_evaluation=self._on_evaluation)
            self.monitor.start()
        self._warm_up(spec, load_spec.warmup_s)

    def _warm_up(self, spec: InoculateSpec, warmup_s: float) -> None:
        """Let the load settle, then wait until every SLO window holds only seconds after
        the warm-up: the before steady state never judges warm-up seconds."""
        stopping = lambda: self.guard.reason is not None  # noqa: E731
        deadline = time.monotonic() + warmup_s
        while not stopping() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        since = time.time()
        windows = [slo.window_s for slo in spec.slos]
        fresh = True
        if windows and not stopping():
            logger.info(
                "warm-up over; the before steady state is judged on the next %ds of load",
                max(windows),
            )
            store = SliStore(self.run_dir / SAMPLES_FILE)
            timeout_s = 2 * max(windows) + AFTER_STATE_MARGIN_S
            fresh = wait_fresh_windows(store, since, windows, timeout_s, stopping)
        self.before_state_window = {"since": since, "warmup_s": warmup_s, "fresh": fresh}
        self.live.warmed_up()
        if stopping():
            raise InterruptExecution(self.guard.reason)

    def _guard_tripped(self, reason: str) -> None:
        """The burn-rate guard tripped during the method: abort the run."""
        if len(self.method_window) == 1:
            self.guard.request_abort(reason)

    def _on_evaluation(self, evaluation: Evaluation) -> None:
        self.live.evaluation(evaluation)
        self._warn_never_called(evaluation)
        if self.spec is None or self.spec.on_breach != "abort" or len(self.method_window) != 1:
            return
        if evaluation.t + 1 > self.method_window[0] and evaluation.breached:
            names = ", ".join(v.name for v in evaluation.breached)
            self.guard.request_abort(f"SLO breached during the method: {names}")

    def _warn_never_called(self, evaluation: Evaluation) -> None:
        # Said at the first window it shows, once per SLO: a misspelt endpoint is not an
        # outage, and waiting for the verdict to learn it wastes the run.
        for verdict in evaluation.verdicts:
            reason, name = verdict.reason or "", verdict.name
            if NEVER_CALLED in reason and name not in self._warned_never_called:
                self._warned_never_called.add(name)
                logger.warning("SLO %s: %s", name, reason)

    def _replay_dead_runs(self) -> list[Any]:
        outcomes = revert_outstanding(self.ledger, matches=lambda record: not record.owner_alive())
        for outcome in outcomes:
            record = outcome.record
            logger.warning(
                "%s a fault left by dead run %s (%s): %s",
                "reverted" if outcome.reverted else "could not revert",
                record.run_id or "unknown",
                record.description or record.kind,
                outcome.detail,
            )
        return outcomes

    def _judges_after_state(self, journal: Journal) -> bool:
        # Only under `inoculate run` (the configuration says so): chaoslib itself runs the
        # after-state before the rollbacks, which is what a plain `chaos run` keeps.
        return bool(
            self.configuration.get(AFTER_STATE_CONFIG_KEY)
            and self.experiment.get("steady-state-hypothesis")
            and self.guard.reason is None
            and journal.get("status") not in ("interrupted", "aborted")
            and hypothesis_met((journal.get("steady_states") or {}).get("before")) is not False
            and self.method_window
        )

    def _after_state(self, journal: Journal, since: float) -> None:
        """Judge the after steady state on windows made of seconds after the rollbacks."""
        windows = [slo.window_s for slo in self.spec.slos] if self.spec is not None else []
        settle_s = self.spec.settle_s if self.spec is not None else 0.0
        timeout_s = max(settle_s, 2 * max(windows, default=0) + AFTER_STATE_MARGIN_S)
        fresh = True
        stopping = lambda: self.guard.reason is not None  # noqa: E731
        if windows and self.monitor is not None:
            store = SliStore(self.run_dir / SAMPLES_FILE)
            fresh = wait_fresh_windows(store, since, windows, timeout_s, stopping)
        if self.server_monitor is not None and self.spec is not None:
            # Prometheus' windows end now: wait until the longest starts after the revert
            # and one more scrape has been read.
            longest = max(side.window_s for side in server_side_slos(self.spec.slos))
            until = since + longest + SERVER_SIDE_SETTLE_S
            while not stopping() and time.time() < until:
                time.sleep(min(0.2, max(0.0, until - time.time())))
        self.after_state_window = {"since": since, "fresh": fresh, "timeout_s": timeout_s}
        if self.guard.reason is not None:
            return  # interrupted while waiting: no after-state to judge
        run_deviation_validation_hypothesis(
            self.experiment,
            journal,
            self.configuration,
            self._resolved_secrets or {},
            self.event_registry or EventHandlerRegistry(),
            None,
        )

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

    def _pull_levers_on(self, spec: InoculateSpec) -> None:
        """Arm the kill switch and the maximum duration until the components stop: either
        aborts the method (the rollbacks revert every fault) or, once the rollbacks have
        begun, cuts the after-state check short (the rollbacks always run to their end). A
        kill switch engaged now stops the run before anything starts."""
        if spec.kill_switch is not None:
            reason = kill_switch_engaged(spec.kill_switch)
            if reason is not None:
                self.guard.reason = reason
                raise InterruptExecution(reason)
            self.kill_switch = KillSwitchWatcher(spec.kill_switch, self.guard.request_abort)
            self.kill_switch.start()
        if spec.max_duration_s is not None:
            limit = spec.max_duration_s
            self.deadline = threading.Timer(
                limit, self.guard.request_abort, (f"the maximum duration of {limit:g} s passed",)
            )
            self.deadline.daemon = True
            self.deadline.start()

    def _release_levers(self) -> None:
        if self.kill_switch is not None:
            self.kill_switch.stop()
        if self.deadline is not None:
            self.deadline.cancel()

    def _stop_components(self) -> None:
        self._release_levers()
        for name, stop in (
            ("monitor", self.monitor.stop if self.monitor else None),
            ("prometheus monitor", self.server_monitor.stop if self.server_monitor else None),
            ("load", self.load.stop if self.load else None),
            ("per-second figures", self.figures.finish if self.figures else None),
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
            slos=self._judged_slos(),
            evaluations=self._evaluations(),
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
            probe_verdicts_before=slo_verdicts(steady.get("before")),
            probe_verdicts_after=slo_verdicts(steady.get("after")),
            restoration={i: (r.restored, r.detail) for i, r in self.restoration.items()},
            recovery_objective_s=self.spec.recovery_objective_s if self.spec else None,
            load=_load_facts(self.spec.load) if self.spec and self.spec.load else None,
            burn_rates=self.burn_rates,
            extra={
                "run_id": self.run_id,
                "run_dir": str(self.run_dir),
                "journal": JOURNAL_FILE,
                "samples_file": SAMPLES_FILE if (self.run_dir / SAMPLES_FILE).exists() else None,
                "reverted_at_start": self.reverted_at_start,
                "reverted_by_safety_net": self.reverted_by_safety_net,
                "runbook": self.spec.runbook if self.spec else None,
                "system_at_end": self.system_at_end,
                "before_state_window": self.before_state_window,
                "after_state_window": self.after_state_window,
            },
        )
        return summarize(facts)

    def _burn_rates_around_the_method(
        self,
    ) -> dict[str, tuple[int, int, float | None, float | None]]:
        """Each guarded Prometheus side's burn rate over the window before the method (the
        burn-rate guard's long window, or the SLO's own) and over the seconds since the
        rollbacks ended (at most as long)."""
        spec = self.spec
        if spec is None or spec.prometheus is None or not self.method_window:
            return {}
        policy = spec.guards.burn_rate if spec.guards is not None else None
        now = time.time()
        since_rollbacks = int(now - (self.rollbacks_ended_at or now))
        rates = {}
        try:
            with PrometheusClient(spec.prometheus) as client:
                for side in guarded(server_side_slos(spec.slos)):
                    window = policy.long_window_s if policy is not None else side.window_s
                    after_s = max(1, min(window, since_rollbacks))
                    before = burn_rate_at(client, side, window, self.method_window[0])
                    after = burn_rate_at(client, side, after_s, now)
                    rates[side.name] = (window, after_s, before, after)
        except Exception:  # a figure of the report, never a reason to lose the verdict
            logger.exception("reading the burn rates around the method failed")
        return rates

    def _judged_slos(self) -> list[Any]:
        """Each SLO as the load measures it (when there is load), each followed by its
        Prometheus side: the rows of one SLO side by side."""
        if self.spec is None:
            return []
        rows: list[Any] = []
        for slo in self.spec.slos:
            if self.spec.load is not None:
                rows.append(slo)
            rows.extend(server_side_slos([slo]))
        return rows

    def _evaluations(self) -> list[Evaluation]:
        """Both monitors' evaluations, in the order they were seen."""
        load = self.monitor.evaluations() if self.monitor else []
        server = self.server_monitor.evaluations() if self.server_monitor else []
        return sorted([*load, *server], key=lambda e: e.seen_at) if server else load

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


def _log_through_chaostoolkit() -> None:
    # `chaos` prints and files only its own logger's records; ours would reach the console
    # only from WARNING up (Python's last resort). Share its handlers, as chaoslib does.
    ours, theirs = logging.getLogger("inoculate"), logging.getLogger("chaostoolkit")
    if ours.handlers or not theirs.handlers:
        return
    for handler in theirs.handlers:
        ours.addHandler(handler)
    ours.setLevel(min(handler.level for handler in theirs.handlers) or logging.INFO)
    ours.propagate = False


def _iso_timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp() if value else None
    except ValueError:
        return None


def _run_log_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(name) for name in ("chaostoolkit", "inoculate", "")]
    return [handler for log in loggers for handler in log.handlers]


def _parse_spec(
    experiment: Experiment, configuration: dict[str, Any], base_dir: Path | None = None
) -> tuple[InoculateSpec | None, str | None]:
    # `inoculate run` validated the block; under a plain `chaos run` a `${name}` that is a
    # secret (or nothing) would reach Locust as its literal text: refuse it here too.
    found = find_extension(experiment)
    if found is not None:
        where, block = f"extensions[{found[0]}]", found[1]
        secrets = known_names({"secrets": experiment.get("secrets")}) - set(configuration)
        problems = secret_references(where, block, secrets) or list(
            undefined_references(where, block, known_names(experiment, configuration))
        )
        if problems:
            return None, "invalid inoculate extension: " + "; ".join(map(str, problems))
    try:
        return parse_extension(experiment, configuration, base_dir), None
    except (ValidationError, ExperimentInvalid) as exc:
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
    # chaoslib stamps the end before the after-state and teardown we run after its
    # rollbacks: the run ends now.
    started = _iso_timestamp(journal.get("start"))
    if started is not None:
        now = time.time()
        journal["end"] = datetime.fromtimestamp(now, UTC).isoformat()
        journal["duration"] = now - started
    if summary.status is RunStatus.FAILED:
        breached = any(slo.breached_during_method for slo in summary.slos)
        if breached or summary.hypothesis.after is False:
            journal["deviated"] = True
        broken = summary.failed_activities or summary.failed_rollbacks or summary.faults_left
        if summary.hypothesis.before is False or broken:
            journal["status"] = "failed"
    elif summary.status.stopped_early:
        journal["status"] = str(summary.status)
