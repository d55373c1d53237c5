"""The inoculate Chaos Toolkit control: declare it and a plain ``chaos run`` gets inoculate.

    controls:
      - name: inoculate
        provider: {type: python, module: inoculate.extensions.control}

It brings up the embedded system and the Locust load before the steady state is checked,
evaluates the SLOs continuously, writes the journal after every activity, reverts faults
no rollback reverted, stops everything after the rollbacks, and corrects the journal's
status (see ``inoculate.session.run_session``). ``inoculate run`` adds it when an experiment
forgets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.types import Configuration, Experiment, Journal, Secrets, Settings

if TYPE_CHECKING:  # loaded when a run configures the control, not when validation imports it
    from inoculate.session.run_session import RunSession

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "configure_control",
]

# chaoslib calls a control's hooks as plain module functions with no instance to carry
# state, so the session of each running experiment is found by the experiment's identity.
# An entry lives from configure_control to after_experiment_control of that one run.
_sessions: dict[int, RunSession] = {}

logger = logging.getLogger("inoculate")


def configure_control(
    experiment: Experiment,
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: Settings = None,
    event_registry: Any = None,
) -> None:
    """Create the run's session and subscribe it to the run's events."""
    if configuration is None:
        raise InterruptExecution("the inoculate control needs the run's configuration")
    from inoculate.session.run_session import RunSession

    session = RunSession(experiment, configuration)
    _sessions[id(experiment)] = session
    if event_registry is not None:
        event_registry.register(session)
        session.event_registry = event_registry


def before_experiment_control(context: Experiment, **kwargs: Any) -> None:
    """Bring up the system, the load and the SLO monitor; interrupt the run if they fail."""
    session = _sessions.get(id(context))
    if session is None:
        raise InterruptExecution("the inoculate control was not configured for this run")
    session.bring_up()


def after_experiment_control(context: Experiment, state: Journal = None, **kwargs: Any) -> None:
    """After the rollbacks: stop everything and record the verdict in the journal."""
    session = _sessions.pop(id(context), None)
    if session is not None:
        try:
            session.tear_down(state)
        except Exception:
            # chaoslib logs a control's exception at debug level only: say it, or the run
            # would end "aborted" with no word of why.
            logger.exception("inoculate could not finish the run")
            raise
