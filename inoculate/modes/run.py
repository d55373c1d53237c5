"""``inoculate run``: validate, then run one experiment through chaoslib's Python API.

The run itself is chaoslib's ``Runner`` with our control (``inoculate.extensions.control``) and its
session subscribed to the run's events; this module adds what only a command can do:
refuse invalid input before anything starts, pick the run directory, make rollbacks
always run, and turn the session's verdict into an exit code.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.run import Runner, initialize_run_journal
from chaoslib.types import Strategy

from inoculate.canary.kill_switch import engaged as kill_switch_engaged
from inoculate.experiment.spec import InoculateSpec
from inoculate.experiment.validation import ValidatedExperiment, validate_experiment
from inoculate.experiment.variables import declared_secret_scopes, load_variables
from inoculate.model.errors import RunInterrupted, RunSkipped
from inoculate.model.files import read_json, write_json_atomic
from inoculate.model.layout import (
    AFTER_STATE_CONFIG_KEY,
    BASE_DIR_CONFIG_KEY,
    JOURNAL_FILE,
    LEDGER_CONFIG_KEY,
    RUN_DIR_CONFIG_KEY,
    RUN_ID_CONFIG_KEY,
    SUMMARY_FILE,
    new_run_dir,
)
from inoculate.model.secrets import scrub, secret_values
from inoculate.model.status import RunStatus
from inoculate.model.summary import RunSummary
from inoculate.session.interrupts import (
    SignalLatch,
    interruptible_pauses,
    keeping_our_sigterm,
)
from inoculate.steady_state.guards import budget_shortfalls
from inoculate.steady_state.prometheus import PrometheusClient
from inoculate.steady_state.server_side import server_side_slos

__all__ = [
    "CONTROL_MODULE",
    "RunOutcome",
    "load_run_variables",
    "run_experiment_file",
    "run_validated",
]

logger = logging.getLogger("inoculate")
# Named, not imported: chaoslib loads the control, which drives the session (layers run down).
CONTROL_MODULE = "inoculate.extensions.control"


def _control() -> dict[str, Any]:
    return {"name": "inoculate", "provider": {"type": "python", "module": CONTROL_MODULE}}


def _settings() -> dict[str, Any]:
    # A fresh mapping per run: chaoslib fills settings in place, and a gate runs many in turn.
    return {"runtime": {"rollbacks": {"strategy": "always"}, "hypothesis": {"strategy": "default"}}}


@dataclass(frozen=True)
class RunOutcome:
    """Where a run wrote its results and how it ended."""

    run_dir: Path
    summary: RunSummary

    @property
    def exit_code(self) -> int:
        """0 held, 1 failed, 3 interrupted or aborted (2, invalid input, never gets here)."""
        return int(self.summary.status.exit_code)


def run_experiment_file(
    path: Path,
    variables: Mapping[str, Any] | None = None,
    var_files: Sequence[str] = (),
    out_dir: Path = Path("runs"),
    ledger: Path | None = None,
    latch: SignalLatch | None = None,
) -> RunOutcome:
    """Validate and run the experiment at ``path``; raise :class:`ExperimentInvalid` early.

    ``latch`` is the caller's installed :class:`SignalLatch` (the command's); without one, a
    latch is installed for the run and removed after it. A signal the latch holds before
    the run directory exists stops everything with :class:`RunInterrupted`: nothing was
    started.
    """
    config_vars, secret_vars = _variables(variables, var_files)
    validated = validate_experiment(path, config_vars, secret_vars)
    for deprecation in validated.deprecations:
        logger.warning("%s: %s", path, deprecation)
    _check_kill_switch(validated.spec)
    _check_error_budget(validated.spec)
    return run_validated(validated, path, config_vars, secret_vars, out_dir, ledger, latch)


def run_validated(
    validated: ValidatedExperiment,
    path: Path,
    config_vars: dict[str, Any],
    secret_vars: dict[str, Any],
    out_dir: Path = Path("runs"),
    ledger: Path | None = None,
    latch: SignalLatch | None = None,
) -> RunOutcome:
    """Run an experiment that passed validation (and whatever checks the caller makes
    before a run); ``path`` is its file, against whose folder its paths resolve."""
    own_latch = latch is None
    latch = latch or SignalLatch().install()
    try:
        if latch.received:
            raise RunInterrupted(latch.received)
        return _run(validated, path, config_vars, secret_vars, out_dir, ledger)
    finally:
        if own_latch:
            latch.restore()


def _check_kill_switch(spec: InoculateSpec | None) -> None:
    """Raise :class:`RunSkipped` when the experiment's kill switch is engaged now."""
    if spec is not None and spec.kill_switch is not None:
        reason = kill_switch_engaged(spec.kill_switch)
        if reason is not None:
            raise RunSkipped(f"skipped: {reason}")


def _check_error_budget(spec: InoculateSpec | None) -> None:
    """Raise :class:`RunSkipped` when an SLO has less error budget left over its period than
    the experiment's ``guards.error_budget`` demands: nothing has started yet."""
    if spec is None or spec.guards is None or spec.guards.error_budget is None:
        return
    if spec.prometheus is None:
        return  # refused at validation
    with PrometheusClient(spec.prometheus) as client:
        problems = budget_shortfalls(
            client, server_side_slos(spec.slos), spec.guards.error_budget, time.time()
        )
    if problems:
        raise RunSkipped("skipped by the error-budget guard: " + "; ".join(problems))


def _run(
    validated: ValidatedExperiment,
    path: Path,
    config_vars: dict[str, Any],
    secret_vars: dict[str, Any],
    out_dir: Path,
    ledger: Path | None,
) -> RunOutcome:
    run_id = uuid.uuid4().hex[:12]
    run_dir = new_run_dir(str(validated.experiment["title"]), Path(out_dir)).resolve()
    config_vars.update(
        {
            RUN_DIR_CONFIG_KEY: str(run_dir),
            RUN_ID_CONFIG_KEY: run_id,
            BASE_DIR_CONFIG_KEY: str(Path(path).resolve().parent),
            AFTER_STATE_CONFIG_KEY: True,
        }
    )
    if ledger is not None:
        config_vars[LEDGER_CONFIG_KEY] = str(Path(ledger).resolve())
    experiment = _prepared(validated.experiment, config_vars, secret_vars)
    run_dir.mkdir(parents=True, exist_ok=True)
    # A journal from the first moment the run directory exists: a run killed before the
    # session writes its own still leaves a valid one, which says the run never finished.
    secrets = secret_values(experiment.get("secrets"), secret_vars)
    first = scrub({**initialize_run_journal(experiment), "status": "running"}, secrets)
    write_json_atomic(run_dir / JOURNAL_FILE, first)
    # Before the method only: the session checks the after-state itself, after the rollbacks.
    try:
        with (
            Runner(Strategy.BEFORE_METHOD) as runner,
            keeping_our_sigterm(),
            interruptible_pauses(),
        ):
            journal = runner.run(
                experiment, settings=_settings(), experiment_vars=(config_vars, secret_vars)
            )
    except InterruptExecution as exc:
        # chaoslib's own SIGTERM handler, while it loads the configuration: nothing started.
        raise RunInterrupted(str(exc) or "interrupted while chaoslib set up") from exc
    document = read_json(run_dir / SUMMARY_FILE)
    if document is None:
        # The control never got to judge the run (e.g. chaoslib failed before controls ran).
        summary = RunSummary(
            experiment=str(validated.experiment["title"]),
            status=RunStatus.ABORTED,
            exit_code=RunStatus.ABORTED.exit_code,
            reasons=[f"journal: {journal.get('status')}"],
        )
        write_json_atomic(run_dir / SUMMARY_FILE, summary.to_json())
    else:
        summary = RunSummary.from_json(document)
    return RunOutcome(run_dir=run_dir, summary=summary)


def load_run_variables(
    variables: Mapping[str, Any] | None, var_files: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's configuration and secret values from ``--var`` and ``--var-file``."""
    return _variables(variables, var_files)


def _variables(
    variables: Mapping[str, Any] | None, var_files: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    # Checked before the experiment (raises ExperimentInvalid naming the var file); the
    # .env files' variables are exported now because chaoslib's own validation of
    # `type: env` configuration reads them.
    loaded = load_variables(var_files, variables)
    loaded.export_environment()
    return dict(loaded.configuration), dict(loaded.secrets)


def _prepared(
    experiment: dict[str, Any],
    config_vars: Mapping[str, Any],
    secret_vars: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add our control if missing, declare every variable in the configuration and every
    var file's secret scope in the secrets.

    chaoslib only lets a variable override a key the experiment already declares and
    silently drops the others (a var file's secret scope the experiment does not declare
    too), so our keys, the user's --var and the var files' scopes are declared here.
    """
    controls = list(experiment.get("controls") or [])
    modules = {(c.get("provider") or {}).get("module") for c in controls if isinstance(c, Mapping)}
    if CONTROL_MODULE not in modules:
        controls.append(_control())
    configuration = {**(experiment.get("configuration") or {}), **config_vars}
    prepared = {**experiment, "controls": controls, "configuration": configuration}
    secrets = declared_secret_scopes(experiment.get("secrets"), secret_vars)
    if secrets is not None:
        prepared["secrets"] = secrets
    return prepared
