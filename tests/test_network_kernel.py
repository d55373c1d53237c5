"""Kernel network faults for real: iptables on a loopback port the test owns, netem probing.

Needs root and iptables (the CI machine has both): without them the tests skip with the
reason, except under CI=true, where they fail. Every rule a test adds is removed after it,
whatever happened; only ports the test listens on are touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from inoculate.extensions import host_network as kernel_network
from inoculate.extensions.host_network import kernel
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import revert_outstanding


def _require_root_and_iptables() -> None:
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("iptables") is None:
        missing.append("iptables")
    if missing:
        reason = f"kernel network faults need {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _rules_with(marker: str) -> list[str]:
    listing = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True)
    return [line for line in listing.stdout.splitlines() if marker in line]


def _delete_rules_with(marker: str) -> None:
    for line in _rules_with(marker):
        words = shlex.split(line)
        subprocess.run(["iptables", "-w", "-D", *words[1:]], capture_output=True, check=False)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that this test owns (accepting in the kernel's backlog)."""
    _require_root_and_iptables()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    yield port
    sock.close()
    _delete_rules_with(f"--dport {port} ")  # whatever a failed test left
    _delete_rules_with(f"--sport {port} ")


@pytest.fixture
def configuration(tmp_path: Path) -> dict[str, str]:
    return {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}


def _connects(port: int, timeout: float = 0.3) -> bool | str:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    return True


def test_reject_partition_refuses_and_heal_restores(
    listener: int, configuration: dict[str, str]
) -> None:
    assert _connects(listener) is True
    result = kernel_network.partition(listener, action="reject", configuration=configuration)
    assert len(_rules_with(result["comment"])) == 2
    assert _connects(listener) == "refused"
    kernel_network.heal_partition(port=listener, configuration=configuration)
    assert _rules_with(result["comment"]) == []
    assert _connects(listener) is True
    assert FaultLedger(Path(configuration["inoculate_ledger"])).outstanding() == []


def test_drop_partition_blackholes(listener: int, configuration: dict[str, str]) -> None:
    kernel_network.partition(listener, action="drop", configuration=configuration)
    try:
        assert _connects(listener) == "timeout"
    finally:
        kernel_network.heal_partition(configuration=configuration)
    assert _connects(listener) is True


def test_undo_removes_exactly_our_rules_from_the_ledger_alone(
    listener: int, configuration: dict[str, str]
) -> None:
    other = f"someone-else-{uuid.uuid4().hex[:8]}"
    rule = ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(listener),
            "-m", "comment", "--comment", other, "-j", "ACCEPT"]  # fmt: skip
    subprocess.run(["iptables", "-w", "-A", *rule], check=True)
    try:
        ours = kernel_network.partition(listener, action="reject", configuration=configuration)
        # As `inoculate recover` after a SIGKILL: the ledger record alone.
        [outcome] = revert_outstanding(FaultLedger(Path(configuration["inoculate_ledger"])))
        assert outcome.reverted, outcome.detail
        assert _rules_with(ours["comment"]) == []
        assert len(_rules_with(other)) == 1  # not ours: untouched
    finally:
        subprocess.run(["iptables", "-w", "-D", *rule], check=False)


def test_bad_partition_arguments_are_refused_before_anything(
    configuration: dict[str, str],
) -> None:
    for kwargs, message in (
        ({"port": 80, "action": "explode"}, "action"),
        ({"port": 0}, "port"),
        ({"port": 80, "host": "shop.example"}, "IP address"),
    ):
        with pytest.raises(kernel.KernelFaultError, match=message):
            kernel_network.partition(configuration=configuration, **kwargs)  # type: ignore[arg-type]
    assert FaultLedger(Path(configuration["inoculate_ledger"])).outstanding() == []


def _qdiscs(device: str) -> str:
    return subprocess.run(
        ["tc", "qdisc", "show", "dev", device], capture_output=True, text=True, check=False
    ).stdout


def test_netem_is_detected_and_missing_netem_is_a_clear_error(
    configuration: dict[str, str],
) -> None:
    _require_root_and_iptables()
    if shutil.which("tc") is None:
        pytest.fail("tc (iproute2) is missing on a root machine")
    support = kernel.netem_support()
    before = _qdiscs("lo")
    assert _qdiscs("lo") == before  # the probe ran in a throwaway namespace
    if support.available:
        return  # netem present: applying it would slow every loopback user of this machine
    with pytest.raises(kernel.KernelFeatureMissing, match="netem") as error:
        kernel_network.add_netem("lo", delay_ms=100, configuration=configuration)
    assert "CONFIG_NET_SCH_NETEM" in str(error.value)
    assert _qdiscs("lo") == before  # nothing half-applied
    assert FaultLedger(Path(configuration["inoculate_ledger"])).outstanding() == []
