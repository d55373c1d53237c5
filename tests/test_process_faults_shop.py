"""Process faults against the real demo shop's services, targeted by service name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from inoculate.demo.shop.client import read_state, start_shop
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.extensions import process
from inoculate.faults.ledger import FaultLedger

pytestmark = pytest.mark.integration


@pytest.fixture
def shop_configuration(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A shop without self-healing, and the configuration a run would give the activities."""
    state_dir = tmp_path / "system"
    handle = start_shop(state_dir, ShopKnobs(restart=False, catalog_replicas=2))
    try:
        yield {
            "inoculate_system": "shop",
            "inoculate_system_dir": str(state_dir),
            "inoculate_ledger": str(tmp_path / "ledger.jsonl"),
        }
    finally:
        handle.stop()


def _pids(configuration: dict[str, Any], name: str) -> list[int]:
    """Pids of a service (``catalog``) or of one instance (``catalog-1``)."""
    state = read_state(Path(configuration["inoculate_system_dir"]))
    if name in state.services:
        return [state.instance(name).pid]
    return state.pids_of(name)


def test_kill_one_instance_then_ensure_running_starts_it(
    shop_configuration: dict[str, Any],
) -> None:
    [old_pid] = _pids(shop_configuration, "catalog-1")
    result = process.kill(service="catalog-1", configuration=shop_configuration)
    assert [p["pid"] for p in result["processes"]] == [old_pid]
    assert len(FaultLedger(Path(shop_configuration["inoculate_ledger"])).outstanding()) == 1
    restored = process.ensure_running(service="catalog", configuration=shop_configuration)
    assert [r["reverted"] for r in restored["reverted"]] == [True]
    assert {p["instance"] for p in restored["processes"]} == {"catalog-0", "catalog-1"}
    [new_pid] = _pids(shop_configuration, "catalog-1")
    assert new_pid != old_pid and psutil.pid_exists(new_pid)
    assert FaultLedger(Path(shop_configuration["inoculate_ledger"])).outstanding() == []


def test_restart_gives_every_instance_a_new_process(shop_configuration: dict[str, Any]) -> None:
    before = set(_pids(shop_configuration, "catalog"))
    result = process.restart(service="catalog", configuration=shop_configuration)
    after = {p["pid"] for p in result["processes"]}
    assert len(after) == 2 and not after & before
    assert FaultLedger(Path(shop_configuration["inoculate_ledger"])).outstanding() == []


def test_freeze_a_service_and_ensure_running_thaws_it(shop_configuration: dict[str, Any]) -> None:
    process.freeze(service="orders", configuration=shop_configuration)
    [pid] = _pids(shop_configuration, "orders")
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    states = process.processes_state(service="orders", configuration=shop_configuration)
    assert [s["status"] for s in states] == [psutil.STATUS_STOPPED]
    process.ensure_running(service="orders", configuration=shop_configuration)
    assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
    assert FaultLedger(Path(shop_configuration["inoculate_ledger"])).outstanding() == []


def test_unknown_service_names_the_known_ones(shop_configuration: dict[str, Any]) -> None:
    with pytest.raises(Exception, match=r"no service 'payments'.*catalog"):
        process.kill(service="payments", configuration=shop_configuration)
