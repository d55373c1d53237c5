"""inoculate: chaos experiments with SLO steady states, Locust load and a fault ledger.

The distribution claims this one import name. Its parts (see ARCHITECTURE.md):

- ``inoculate.cli``: the command line; ``inoculate.modes``: run and gate;
- ``inoculate.extensions``: what experiments name, and the control (folder ``extensions/``);
- ``inoculate.session``: one run; ``inoculate.experiment``: loading, the block, validation;
- ``inoculate.faults``, ``inoculate.load``, ``inoculate.systems``, ``inoculate.toxiproxy_server``;
- ``inoculate.steady_state``: SLIs and SLOs (folder ``steady_state/``);
- ``inoculate.reports``: scores and reports (folder ``reports/``);
- ``inoculate.model``: statuses, exit codes, run layout, the run summary, errors;
- ``inoculate.demo``: the embedded demo systems (folder ``demo/``).

Nothing is imported here: the Locust subprocess and the demo services load only what they use.
"""

__version__ = "0.2.0"


def discover(discover_system: bool = True) -> dict[str, object]:
    """Chaos Toolkit discovery (``chaos discover --no-install inoculate``): every activity
    experiments can name, with its arguments and docstring."""
    from inoculate.extensions import discover as discover_activities

    return discover_activities(discover_system)
