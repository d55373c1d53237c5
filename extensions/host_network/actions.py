"""Kernel-level network faults: iptables partitions and tc/netem latency and loss.

Both need root and act on the host's network stack, so they affect every process talking
to the target, not only the system under test: partition one ``host:port``, and prefer the
proxy's toxics (``inoculate.extensions.toxiproxy``) for latency between two services.

- ``partition(port, host, action)`` inserts iptables rules that drop (``drop``: packets
  vanish, a dead link) or refuse (``reject``: TCP RST at once) traffic to and from
  ``host:port``. Every rule carries the comment ``inoculate:<id>``; the undo deletes the
  rules that carry that comment and nothing else.
- ``add_netem(device, delay_ms, jitter_ms, loss_percent)`` adds a netem root qdisc with
  our handle; the undo deletes that qdisc only. Before anything is recorded or applied,
  the kernel's netem support is probed in a throwaway network namespace; a kernel without
  it (``CONFIG_NET_SCH_NETEM`` not set) gets a clear :class:`KernelFeatureMissing` error.

As for every fault, the undo record is written to the fault ledger before acting, and
``heal_partition`` / ``remove_netem`` (rollbacks) or ``inoculate recover`` undo it.
"""

from __future__ import annotations

import ipaddress
import shlex
import uuid
from dataclasses import dataclass
from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.host_network.kernel import (
    COMMENT_PREFIX,
    NETEM_HANDLE,
    KernelFaultError,
    KernelFeatureMissing,
    delete_commented_rules,
    netem_support,
    require,
    run,
)
from inoculate.extensions.host_network.reverters import FAMILY
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import inject, revert_matching

__all__ = ["add_netem", "heal_partition", "partition", "remove_netem"]


# --- iptables partition ---


@dataclass(frozen=True)
class _Rule:
    chain: str
    spec: tuple[str, ...]


def _partition_rules(host: str, port: int, protocol: str, action: str) -> list[_Rule]:
    outgoing = ["-j", "DROP"]
    incoming = ["-j", "DROP"]
    if action == "reject":
        outgoing = ["-j", "REJECT"] + (["--reject-with", "tcp-reset"] if protocol == "tcp" else [])
        if protocol == "tcp":
            # The RST that REJECT answers with comes "from" host:port: let it in, or a
            # rejected connection would hang instead of being refused.
            incoming = ["!", "--tcp-flags", "RST", "RST", *incoming]
    return [
        # What we send to host:port, and what host:port sends back to us.
        _Rule("OUTPUT", ("-p", protocol, "-d", host, "--dport", str(port), *outgoing)),
        _Rule("INPUT", ("-p", protocol, "-s", host, "--sport", str(port), *incoming)),
    ]


def partition(
    port: int,
    host: str = "127.0.0.1",
    action: str = "drop",
    protocol: str = "tcp",
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Cut the traffic to and from ``host:port`` with iptables (``drop`` or ``reject``).

    ``host`` is an IP address (IPv6 uses ip6tables). The rules are removed by
    ``heal_partition`` or ``inoculate recover``; rules of anyone else are never touched.
    """
    if action not in ("drop", "reject"):
        raise KernelFaultError(f"action must be 'drop' or 'reject', got {action!r}")
    if protocol not in ("tcp", "udp"):
        raise KernelFaultError(f"protocol must be 'tcp' or 'udp', got {protocol!r}")
    if not 1 <= int(port) <= 65535:
        raise KernelFaultError(f"port must be 1..65535, got {port}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise KernelFaultError(f"host must be an IP address, got {host!r}") from exc
    binary = "ip6tables" if address.version == 6 else "iptables"
    require(binary, "a partition")
    comment = f"{COMMENT_PREFIX}{uuid.uuid4().hex[:16]}"
    rules = _partition_rules(str(address), int(port), protocol, action)
    undo = {"binary": binary, "comment": comment, "chains": sorted({r.chain for r in rules})}

    def act() -> list[str]:
        applied = []
        for rule in rules:
            command = [binary, "-w", "-I", rule.chain, *rule.spec,
                       "-m", "comment", "--comment", comment]  # fmt: skip
            done = run(command)
            if done.returncode != 0:
                delete_commented_rules(binary, undo["chains"], comment)  # nothing half-applied
                raise KernelFaultError(f"`{shlex.join(command)}` failed: {done.stderr.strip()}")
            applied.append(shlex.join(command))
        return applied

    record, applied = inject(
        configuration,
        FAMILY,
        "partition",
        {"host": str(address), "port": int(port), "protocol": protocol},
        undo,
        act,
        description=f"partition ({action}) {address}:{port}/{protocol}",
    )
    return {"id": record.id, "comment": comment, "rules": applied}


def heal_partition(
    port: int | None = None,
    host: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: remove the rules of our partitions (of ``host:port``, or all of ours)."""

    def ours(record: LedgerRecord) -> bool:
        return (
            record.family == FAMILY
            and record.fault == "partition"
            and (port is None or record.target.get("port") == int(port))
            and (host is None or record.target.get("host") == host)
        )

    outcomes = revert_matching(configuration, ours)
    return {"reverted": [o.to_json() for o in outcomes]}


def add_netem(
    device: str = "lo",
    delay_ms: float = 0.0,
    jitter_ms: float = 0.0,
    loss_percent: float = 0.0,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Add latency (± jitter) and packet loss to every packet leaving ``device`` (tc netem).

    Fails with :class:`KernelFeatureMissing`, before recording or applying anything, when
    the kernel has no netem. ``remove_netem`` (or ``inoculate recover``) removes it.
    """
    if delay_ms < 0 or jitter_ms < 0 or not 0 <= loss_percent <= 100:
        raise KernelFaultError("delay_ms and jitter_ms must be >= 0, loss_percent 0..100")
    if delay_ms == 0 and loss_percent == 0:
        raise KernelFaultError("give delay_ms or loss_percent: this netem would do nothing")
    support = netem_support()
    if not support.available:
        raise KernelFeatureMissing(support.reason)
    command = ["tc", "qdisc", "add", "dev", device, "root", "handle", NETEM_HANDLE, "netem"]
    if delay_ms:
        command += ["delay", f"{delay_ms}ms"] + ([f"{jitter_ms}ms"] if jitter_ms else [])
    if loss_percent:
        command += ["loss", f"{loss_percent}%"]

    def act() -> str:
        # One tc command: it applies entirely or not at all.
        done = run(command)
        if done.returncode != 0:
            raise KernelFaultError(f"`{shlex.join(command)}` failed: {done.stderr.strip()}")
        return shlex.join(command)

    record, applied = inject(
        configuration,
        FAMILY,
        "netem",
        {"device": device},
        {"device": device, "handle": NETEM_HANDLE},
        act,
        description=f"netem on {device}: delay {delay_ms}±{jitter_ms} ms, loss {loss_percent}%",
    )
    return {"id": record.id, "command": applied}


def remove_netem(device: str = "lo", configuration: Configuration = None) -> dict[str, Any]:
    """Rollback: remove our netem qdisc from ``device`` and settle its records."""
    outcomes = revert_matching(
        configuration,
        lambda r: r.family == FAMILY and r.fault == "netem" and r.target.get("device") == device,
    )
    return {"reverted": [o.to_json() for o in outcomes]}
