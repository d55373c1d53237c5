"""Undoing host network faults from their ledger record alone (rollbacks and ``recover``).

Registered as the ``host_network`` fault family (entry-point group ``inoculate.faults``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from inoculate.extensions.host_network.kernel import (
    KernelFaultError,
    delete_commented_rules,
    run,
)
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter

__all__ = ["FAMILY", "REVERTERS", "TARGET_KEYS", "VERIFIERS", "revert_netem", "revert_partition"]

FAMILY = "host_network"


def revert_partition(record: LedgerRecord) -> str:
    """Delete exactly the iptables rules tagged with the record's comment."""
    binary, comment = str(record.undo["binary"]), str(record.undo["comment"])
    deleted = delete_commented_rules(binary, record.undo["chains"], comment)
    return f"deleted {deleted} {binary} rule(s) tagged {comment}"


def revert_netem(record: LedgerRecord) -> str:
    """Delete our netem qdisc (by its handle) from the recorded device, if it is there."""
    device, handle = str(record.undo["device"]), str(record.undo["handle"])
    shown = run(["tc", "qdisc", "show", "dev", device])
    if f"netem {handle}" not in shown.stdout:
        return f"no netem qdisc {handle} on {device}: nothing to remove"
    done = run(["tc", "qdisc", "del", "dev", device, "root", "handle", handle])
    if done.returncode != 0:
        raise KernelFaultError(f"cannot remove netem from {device}: {done.stderr.strip()}")
    return f"removed netem {handle} from {device}"


REVERTERS: Mapping[str, Reverter] = MappingProxyType(
    {"partition": revert_partition, "netem": revert_netem}
)


def _netem_device(record: LedgerRecord) -> set[str]:
    return {f"netem:{record.undo.get('device')}:{record.undo.get('handle')}"}


# Partitions never share a target (each fault's rules carry their own comment); the netem
# qdisc of a device is one thing whoever added it.
TARGET_KEYS: Mapping[str, Callable[[LedgerRecord], set[str]]] = MappingProxyType(
    {"netem": _netem_device}
)


def _partition_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    binary, comment = str(record.undo["binary"]), str(record.undo["comment"])
    left = 0
    for chain in record.undo.get("chains", []):
        listing = run([binary, "-w", "-S", chain])
        left += sum(comment in line for line in listing.stdout.splitlines())
    return (False, f"{left} rule(s) tagged {comment} left") if left else (True, "no rule left")


def _netem_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    device, handle = str(record.undo["device"]), str(record.undo["handle"])
    shown = run(["tc", "qdisc", "show", "dev", device])
    if f"netem {handle}" in shown.stdout:
        return False, f"netem {handle} still on {device}"
    return True, f"no netem {handle} on {device}"


VERIFIERS: Mapping[str, Callable[[LedgerRecord], tuple[bool | None, str]]] = MappingProxyType(
    {"partition": _partition_restored, "netem": _netem_restored}
)
