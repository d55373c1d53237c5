"""Kernel-level network faults: iptables partitions and tc/netem latency and loss.

Both need root and act on the host's network stack, so they affect every process talking
to the target, not only the system under test: partition one ``host:port``, and prefer the
proxy's toxics (``extensions.network``) for latency between two services.

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

import gzip
import ipaddress
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from chaoslib.types import Configuration

from extensions.faults import FaultError, Reverter, inject, revert_outstanding
from extensions.ledger import LedgerRecord, ledger_from_configuration

__all__ = [
    "KernelFaultError",
    "KernelFeatureMissing",
    "add_netem",
    "heal_partition",
    "netem_support",
    "partition",
    "remove_netem",
]

MODULE = "extensions.kernel_network"
COMMENT_PREFIX = "inoculate:"
NETEM_HANDLE = "1ee7:"
COMMAND_TIMEOUT_S = 10.0


class KernelFaultError(FaultError):
    """A kernel network fault could not be applied or removed."""


class KernelFeatureMissing(KernelFaultError):
    """The host lacks what the fault needs (a tool, root, a kernel feature); nothing applied."""


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise KernelFeatureMissing(f"{command[0]} is not installed") from exc


def _require(tool: str, what: str) -> None:
    if shutil.which(tool) is None:
        raise KernelFeatureMissing(f"{what} needs `{tool}`, which is not installed")
    if os.geteuid() != 0:
        raise KernelFeatureMissing(f"{what} needs root (CAP_NET_ADMIN); this process is not")


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
    _require(binary, "a partition")
    comment = f"{COMMENT_PREFIX}{uuid.uuid4().hex[:16]}"
    rules = _partition_rules(str(address), int(port), protocol, action)
    undo = {"binary": binary, "comment": comment, "chains": sorted({r.chain for r in rules})}

    def act() -> list[str]:
        applied = []
        for rule in rules:
            command = [binary, "-w", "-I", rule.chain, *rule.spec,
                       "-m", "comment", "--comment", comment]  # fmt: skip
            done = _run(command)
            if done.returncode != 0:
                _delete_commented_rules(binary, undo["chains"], comment)  # nothing half-applied
                raise KernelFaultError(f"`{shlex.join(command)}` failed: {done.stderr.strip()}")
            applied.append(shlex.join(command))
        return applied

    record, applied = inject(
        configuration,
        MODULE,
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
            record.module == MODULE
            and record.fault == "partition"
            and (port is None or record.target.get("port") == int(port))
            and (host is None or record.target.get("host") == host)
        )

    outcomes = revert_outstanding(ledger_from_configuration(configuration), matches=ours)
    failed = [o.detail for o in outcomes if not o.reverted]
    if failed:
        raise KernelFaultError("could not heal: " + "; ".join(failed))
    return {"reverted": [o.to_json() for o in outcomes]}


def _delete_commented_rules(binary: str, chains: Sequence[str], comment: str) -> int:
    """Delete every rule of ``chains`` that carries exactly ``comment``; return how many."""
    deleted = 0
    for chain in chains:
        listing = _run([binary, "-w", "-S", chain])
        if listing.returncode != 0:
            raise KernelFaultError(f"{binary} -S {chain} failed: {listing.stderr.strip()}")
        for line in listing.stdout.splitlines():
            words = shlex.split(line)
            if words[:1] != ["-A"] or not _has_comment(words, comment):
                continue
            done = _run([binary, "-w", "-D", *words[1:]])
            if done.returncode != 0:
                raise KernelFaultError(f"cannot delete `{line}`: {done.stderr.strip()}")
            deleted += 1
    return deleted


def _has_comment(words: Sequence[str], comment: str) -> bool:
    return any(
        word == "--comment" and index + 1 < len(words) and words[index + 1] == comment
        for index, word in enumerate(words)
    )


def _revert_partition(record: LedgerRecord) -> str:
    binary, comment = str(record.undo["binary"]), str(record.undo["comment"])
    deleted = _delete_commented_rules(binary, record.undo["chains"], comment)
    return f"deleted {deleted} {binary} rule(s) tagged {comment}"


# --- tc netem ---


@dataclass(frozen=True)
class NetemSupport:
    """Whether this kernel can run netem, and why not."""

    available: bool
    reason: str


def _kernel_config_netem() -> str | None:
    """The kernel's CONFIG_NET_SCH_NETEM line, when /proc/config.gz is there."""
    try:
        with gzip.open("/proc/config.gz", "rt") as config:
            for line in config:
                if "CONFIG_NET_SCH_NETEM" in line:
                    return line.strip()
    except OSError:
        return None
    return None


def netem_support() -> NetemSupport:
    """Probe netem without touching the host: add a netem qdisc in a throwaway namespace."""
    for tool in ("tc", "ip"):
        if shutil.which(tool) is None:
            return NetemSupport(False, f"`{tool}` (iproute2) is not installed")
    if os.geteuid() != 0:
        return NetemSupport(False, "tc/netem needs root (CAP_NET_ADMIN); this process is not")
    config = _kernel_config_netem()
    namespace = f"inoculate-probe-{uuid.uuid4().hex[:8]}"
    if _run(["ip", "netns", "add", namespace]).returncode != 0:
        if config and config.startswith("#"):
            return NetemSupport(False, _missing_netem(config))
        return NetemSupport(False, "cannot create a network namespace to probe netem safely")
    try:
        netem = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"]
        probe = _run(["ip", "netns", "exec", namespace, *netem])
    finally:
        _run(["ip", "netns", "del", namespace])
    if probe.returncode == 0:
        return NetemSupport(True, "netem qdisc available")
    return NetemSupport(False, _missing_netem(config, probe.stderr.strip()))


def _missing_netem(config: str | None, tc_error: str = "") -> str:
    said = f" (tc said: {tc_error})" if tc_error else ""
    kernel = f"; the kernel configuration says `{config}`" if config else ""
    return (
        "this kernel has no netem queueing discipline (module sch_netem, "
        f"CONFIG_NET_SCH_NETEM){kernel}{said}: tc/netem latency and loss cannot be applied "
        "here; use the proxy's latency toxic (extensions.network.add_latency) instead"
    )


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
        done = _run(command)
        if done.returncode != 0:
            raise KernelFaultError(f"`{shlex.join(command)}` failed: {done.stderr.strip()}")
        return shlex.join(command)

    record, applied = inject(
        configuration,
        MODULE,
        "netem",
        {"device": device},
        {"device": device, "handle": NETEM_HANDLE},
        act,
        description=f"netem on {device}: delay {delay_ms}±{jitter_ms} ms, loss {loss_percent}%",
    )
    return {"id": record.id, "command": applied}


def remove_netem(device: str = "lo", configuration: Configuration = None) -> dict[str, Any]:
    """Rollback: remove our netem qdisc from ``device`` and settle its records."""
    outcomes = revert_outstanding(
        ledger_from_configuration(configuration),
        matches=lambda r: (
            r.module == MODULE and r.fault == "netem" and r.target.get("device") == device
        ),
    )
    failed = [o.detail for o in outcomes if not o.reverted]
    if failed:
        raise KernelFaultError("could not remove netem: " + "; ".join(failed))
    return {"reverted": [o.to_json() for o in outcomes]}


def _revert_netem(record: LedgerRecord) -> str:
    device, handle = str(record.undo["device"]), str(record.undo["handle"])
    shown = _run(["tc", "qdisc", "show", "dev", device])
    if f"netem {handle}" not in shown.stdout:
        return f"no netem qdisc {handle} on {device}: nothing to remove"
    done = _run(["tc", "qdisc", "del", "dev", device, "root", "handle", handle])
    if done.returncode != 0:
        raise KernelFaultError(f"cannot remove netem from {device}: {done.stderr.strip()}")
    return f"removed netem {handle} from {device}"


FAULTS: Mapping[str, Reverter] = MappingProxyType(
    {"partition": _revert_partition, "netem": _revert_netem}
)
