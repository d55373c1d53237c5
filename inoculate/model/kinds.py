"""Fault kinds as data: ``<family>:<fault>`` (``process:kill``), and the names 0.1 wrote instead.

Before fault kinds existed, ledger records, fault timelines, summaries and report keys named
a fault by its module path (``extensions.process:kill``). Those records are still read: this
module turns an old name into its kind, so a moved module is never a data migration again.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LEGACY_MODULES", "kind_from_legacy", "normalize_kind"]

LEGACY_MODULES: Mapping[str, str] = {
    "extensions.process": "process",
    "extensions.docker": "docker",
    "extensions.network": "toxiproxy",
    "extensions.kernel_network": "host_network",
    "extensions.kubernetes": "kubernetes",
}


def kind_from_legacy(module: str, fault: str) -> str:
    """The kind of a fault recorded by module path (raises ``KeyError`` if unknown)."""
    return f"{LEGACY_MODULES[module]}:{fault}"


def normalize_kind(name: str) -> str:
    """A kind, whether ``name`` is one already or an old ``module:fault`` name."""
    module, _, fault = name.rpartition(":")
    return kind_from_legacy(module, fault) if module in LEGACY_MODULES else name
