"""The activities experiments name in ``provider.module``, and the inoculate control.

One package per target, each with ``actions.py``, ``probes.py`` and ``reverters.py`` (the
undo of each fault from its ledger record alone):

- ``inoculate.extensions.process``: kill, freeze and restart local processes;
- ``inoculate.extensions.docker``: container faults against a Docker daemon;
- ``inoculate.extensions.toxiproxy``: network faults through any Toxiproxy-API server;
- ``inoculate.extensions.host_network``: iptables partitions and tc netem on the host;
- ``inoculate.extensions.kubernetes``: pod kills, scale-downs and ingress denial;
- ``inoculate.extensions.control``: the Chaos Toolkit control that runs a session.

``chaos discover --no-install inoculate`` lists every activity with its arguments and
docstring (through :func:`discover`, which ``inoculate.discover`` calls).

This folder is the package ``inoculate.extensions`` (pyproject's ``package-dir``): the wheel
claims the one import name ``inoculate``. Imported under any other name (``import extensions``
from a checkout) it would load twice as two different modules, so it refuses.
"""

from __future__ import annotations

if __name__ != "inoculate.extensions":  # pragma: no cover - a wrong import fails here, loudly
    raise ImportError(
        f"{__file__} is the package inoculate.extensions: import it by that name "
        "(install the project with `pip install -e .` or `make install`)"
    )

from typing import Any

__all__ = ["TARGETS", "discover", "load_exported_activities"]

TARGETS = ("process", "docker", "toxiproxy", "host_network", "kubernetes")
PROBES = "inoculate.steady_state.probes"


def load_exported_activities() -> list[dict[str, Any]]:
    """Every activity of every target, as Chaos Toolkit discovery describes it.

    Each activity's ``mod`` is the target's package (``inoculate.extensions.process``),
    the name experiments use; the SLO probes are listed under their own module.
    """
    from chaoslib.discovery.discover import discover_actions, discover_probes

    activities: list[dict[str, Any]] = []
    for target in TARGETS:
        package = f"{__name__}.{target}"
        for found in (discover_actions(f"{package}.actions"), discover_probes(f"{package}.probes")):
            activities += [{**activity, "mod": package} for activity in found]
    activities += discover_probes(PROBES)
    return activities


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Chaos Toolkit discovery of inoculate's activities (``chaos discover``)."""
    from importlib.metadata import version

    from chaoslib.discovery.discover import initialize_discovery_result

    discovery = initialize_discovery_result("inoculate", version("inoculate"), "inoculate")
    discovery["activities"].extend(load_exported_activities())
    return discovery
