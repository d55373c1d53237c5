"""Host network probes: what this host's kernel can do."""

from __future__ import annotations

from typing import Any

from inoculate.extensions.host_network.kernel import netem_support

__all__ = ["netem_available"]


def netem_available() -> dict[str, Any]:
    """Probe: whether tc/netem can run on this host, tried in a throwaway network namespace
    (the host is never touched). Returns {"met": bool, "reason": why or why not}."""
    support = netem_support()
    return {"met": support.available, "reason": support.reason}
