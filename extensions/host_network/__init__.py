"""Faults on the host's network stack: ``module: inoculate.extensions.host_network``.

Actions: ``partition`` (iptables), ``add_netem`` (tc netem); rollbacks ``heal_partition``,
``remove_netem``. Probe: ``netem_available``. Need root; see :mod:`.actions`.
"""

from inoculate.extensions.host_network.actions import (
    add_netem,
    heal_partition,
    partition,
    remove_netem,
)
from inoculate.extensions.host_network.probes import netem_available

__all__ = ["add_netem", "heal_partition", "netem_available", "partition", "remove_netem"]
