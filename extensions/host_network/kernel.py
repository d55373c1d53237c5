"""The host's network stack as the faults drive it: iptables, tc, and what the kernel can do.

Commands run with a timeout and their failures become :class:`KernelFaultError`; a missing
tool, missing root or a kernel without netem is :class:`KernelFeatureMissing` — before
anything is recorded or applied.
"""

from __future__ import annotations

import gzip
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from inoculate.model.errors import FaultError

__all__ = [
    "COMMENT_PREFIX",
    "NETEM_HANDLE",
    "KernelFaultError",
    "KernelFeatureMissing",
    "NetemSupport",
    "delete_commented_rules",
    "netem_support",
    "require",
    "run",
]

COMMENT_PREFIX = "inoculate:"
NETEM_HANDLE = "1ee7:"
COMMAND_TIMEOUT_S = 10.0


class KernelFaultError(FaultError):
    """A kernel network fault could not be applied or removed."""


class KernelFeatureMissing(KernelFaultError):
    """The host lacks what the fault needs (a tool, root, a kernel feature); nothing applied."""


def run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout; a missing binary is :class:`KernelFeatureMissing`."""
    try:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise KernelFeatureMissing(f"{command[0]} is not installed") from exc


def require(tool: str, what: str) -> None:
    """Raise :class:`KernelFeatureMissing` unless ``tool`` is installed and we are root."""
    if shutil.which(tool) is None:
        raise KernelFeatureMissing(f"{what} needs `{tool}`, which is not installed")
    if os.geteuid() != 0:
        raise KernelFeatureMissing(f"{what} needs root (CAP_NET_ADMIN); this process is not")


def delete_commented_rules(binary: str, chains: Sequence[str], comment: str) -> int:
    """Delete every rule of ``chains`` that carries exactly ``comment``; return how many."""
    deleted = 0
    for chain in chains:
        listing = run([binary, "-w", "-S", chain])
        if listing.returncode != 0:
            raise KernelFaultError(f"{binary} -S {chain} failed: {listing.stderr.strip()}")
        for line in listing.stdout.splitlines():
            words = shlex.split(line)
            if words[:1] != ["-A"] or not _has_comment(words, comment):
                continue
            done = run([binary, "-w", "-D", *words[1:]])
            if done.returncode != 0:
                raise KernelFaultError(f"cannot delete `{line}`: {done.stderr.strip()}")
            deleted += 1
    return deleted


def _has_comment(words: Sequence[str], comment: str) -> bool:
    return any(
        word == "--comment" and index + 1 < len(words) and words[index + 1] == comment
        for index, word in enumerate(words)
    )


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
    if run(["ip", "netns", "add", namespace]).returncode != 0:
        if config and config.startswith("#"):
            return NetemSupport(False, _missing_netem(config))
        return NetemSupport(False, "cannot create a network namespace to probe netem safely")
    try:
        netem = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"]
        probe = run(["ip", "netns", "exec", namespace, *netem])
    finally:
        run(["ip", "netns", "del", namespace])
    if probe.returncode == 0:
        return NetemSupport(True, "netem qdisc available")
    return NetemSupport(False, _missing_netem(config, probe.stderr.strip()))


def _missing_netem(config: str | None, tc_error: str = "") -> str:
    said = f" (tc said: {tc_error})" if tc_error else ""
    kernel = f"; the kernel configuration says `{config}`" if config else ""
    return (
        "this kernel has no netem queueing discipline (module sch_netem, "
        f"CONFIG_NET_SCH_NETEM){kernel}{said}: tc/netem latency and loss cannot be applied "
        "here; use the proxy's latency toxic (inoculate.extensions.toxiproxy.add_latency) instead"
    )
