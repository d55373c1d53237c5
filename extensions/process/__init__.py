"""Process faults and probes: ``module: inoculate.extensions.process`` in an experiment.

Actions: ``kill``, ``freeze``, ``restart``, ``start`` (a process you run yourself);
rollbacks ``thaw``, ``ensure_running``.
Probe: ``processes_state``. See :mod:`.actions` for targets and undo.
"""

from inoculate.extensions.process.actions import (
    ensure_running,
    freeze,
    kill,
    restart,
    start,
    thaw,
)
from inoculate.extensions.process.probes import processes_state

__all__ = ["ensure_running", "freeze", "kill", "processes_state", "restart", "start", "thaw"]
