"""``make demo-canary``: production canaries against the embedded shop, under a policy.

It starts the shop (its gateway gives up on the catalog after 0.3 s and nothing restarts a
frozen service), a Prometheus scraping the gateway every second, and background users
browsing the shop — the production traffic a canary judges — then runs ``inoculate canary``
with ``experiments/canary/policy.yaml``, in turn:

1. a dry run of the brief orders freeze: targets and every guard decision, nothing injected;
2. the brief orders freeze: browsing never calls orders, so it passes;
3. the long orders freeze: the demo engages the kill switch (the policy's ``STOP`` file) a
   few seconds in, and the run is aborted with the freeze reverted;
4. the catalog freeze: browsing fails, and the burn-rate guard aborts the run;
5. the catalog freeze again: the error budget is spent now, so a guard skips it.

Each outcome is checked against what it should be, the audit log's chain is verified, and
every faulted process is checked running again. Everything lands in ``runs/demo-canary-*``
(a copy of ``experiments/canary``, the audit log, the ledger, the runs): the checkout stays
as it was. Exit 0 when every canary ended as expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from inoculate.canary.audit import verify_chain
from inoculate.demo.prometheus import PrometheusServer, start_prometheus
from inoculate.demo.shop.client import ShopHandle, start_shop
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.traffic import browsing
from inoculate.faults.ledger import FaultLedger
from inoculate.model.errors import InoculateError
from inoculate.model.status import ExitCode

__all__ = ["Canary", "Outcome", "main", "run_demo"]

REPO = Path(__file__).resolve().parents[1]  # demo/ sits at the top of the checkout
WIDTH = 140
WARM_UP_S = 15.0  # of browsing scraped by Prometheus before the first canary
KILL_SWITCH_AFTER_S = 8.0  # from the long orders freeze's start to the STOP file
RUN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Canary:
    """One step of the demo and the exit code it must end with."""

    name: str
    experiment: str
    expected: ExitCode
    dry_run: bool = False
    pull_kill_switch: bool = False


CANARIES = (
    Canary("dry run", "orders-freeze-brief.yaml", ExitCode.PASSED, dry_run=True),
    Canary("passes", "orders-freeze-brief.yaml", ExitCode.PASSED),
    Canary("kill switch", "orders-freeze-long.yaml", ExitCode.INTERRUPTED, pull_kill_switch=True),
    Canary("burn-rate guard", "catalog-freeze.yaml", ExitCode.INTERRUPTED),
    Canary("budget spent", "catalog-freeze.yaml", ExitCode.SKIPPED),
)


@dataclass(frozen=True)
class Outcome:
    """What one canary did."""

    name: str
    experiment: str
    expected: int
    exit_code: int
    seconds: float
    said: str  # the line that says why (the verdict's reason, the guard's decision)
    run_dir: str | None


def run_demo(out_dir: Path, console: Console) -> tuple[list[Outcome], list[str]]:
    """Run the canaries; return their outcomes and the problems found after them."""
    root = _workspace(out_dir)
    shop = start_shop(
        root / "shop",
        ShopKnobs(restart=False, gateway_timeout_s=0.3, gateway_retries=0),
        30,
        tie_to_caller=True,
    )
    prometheus: PrometheusServer | None = None
    try:
        prometheus = start_prometheus(
            root / "prometheus", {"shop-gateway": [_host_port(shop.gateway_url)]}
        )
        with browsing(shop.gateway_url, pause_s=0.02, users=2):
            console.print(f"shop at {shop.gateway_url}, Prometheus at {prometheus.url}")
            console.print(f"browsing for {WARM_UP_S:g} s before the first canary ...")
            time.sleep(WARM_UP_S)
            outcomes = [_run(canary, root, shop, prometheus, console) for canary in CANARIES]
        problems = _afterwards(root, shop)
    finally:
        if prometheus is not None:
            prometheus.stop()
        _thaw_everything(shop)
        shop.stop()
    (root / "canary-demo.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    return outcomes, problems


def _run(
    canary: Canary, root: Path, shop: ShopHandle, prometheus: PrometheusServer, console: Console
) -> Outcome:
    console.rule(f"{canary.name}: {canary.experiment}")
    target = "orders" if canary.experiment.startswith("orders") else "catalog"
    command = [
        sys.executable, "-m", "inoculate.cli", "canary",
        str(root / "canary" / canary.experiment),
        "--policy", str(root / "canary" / "policy.yaml"),
        "--var", f"prometheus_url={prometheus.url}",
        "--var", f"{target}_pattern={_pattern(shop, f'{target}-0')}",
        "--out", str(root / "runs"), "--ledger", str(root / "ledger.jsonl"),
        "--audit-log", str(root / "audit.jsonl"), "--lock-dir", str(root / "locks"),
        "--no-report",
    ] + (["--dry-run"] if canary.dry_run else [])  # fmt: skip
    env = {**os.environ, "COLUMNS": str(WIDTH), "INOCULATE_RUNBOOK_FEEDBACK": "off"}
    env.pop("INOCULATE_CANARY_STOP", None)
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    switch = root / "canary" / "STOP"
    timer = None
    if canary.pull_kill_switch:
        timer = threading.Timer(KILL_SWITCH_AFTER_S, switch.touch)
        timer.start()
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if timer is not None:
            timer.cancel()
        switch.unlink(missing_ok=True)
    console.print(stdout, end="", highlight=False, markup=False)
    if process.returncode not in (0, 1, 3, 4):
        console.print(stderr[-3000:], highlight=False, markup=False)
    return Outcome(
        canary.name,
        canary.experiment,
        int(canary.expected),
        process.returncode,
        round(time.monotonic() - started, 1),
        _why(stdout, stderr),
        _last_run_dir(root / "audit.jsonl"),
    )


def _last_run_dir(audit_log: Path) -> str | None:
    """The run directory of the audit log's last line, when that line finished a run."""
    lines = audit_log.read_text(encoding="utf-8").splitlines() if audit_log.exists() else []
    last = json.loads(lines[-1]) if lines else {}
    return last.get("run_dir") if last.get("event") == "finished" else None


def _why(stdout: str, stderr: str) -> str:
    for pattern in (r"^\s+- (aborted: .+)$", r"^(skipped: .+)$", r"^(dry run: .+)$",
                    r"^verdict: (.+)$"):  # fmt: skip
        found = re.search(pattern, stdout + "\n" + stderr, re.MULTILINE)
        if found:
            return found.group(1).strip()
    return (stderr.strip().splitlines() or ["?"])[-1]


def _afterwards(root: Path, shop: ShopHandle) -> list[str]:
    """What must hold after every canary: every shop process running (no fault left), the
    audit log's chain intact, and nothing left in the ledger."""
    problems = []
    for name, instance in shop.state().services.items():
        if instance.pid is None or psutil.Process(instance.pid).status() == "stopped":
            problems.append(f"{name} is not running after the canaries")
    check = verify_chain(root / "audit.jsonl")
    if not check.ok:
        problems.append(f"audit log: chain broken at {check.problem}")
    ledger = root / "ledger.jsonl"
    if ledger.exists():
        left = FaultLedger(ledger).outstanding()
        if left:
            problems.append(f"{len(left)} fault(s) still in the ledger")
    return problems


def _pattern(shop: ShopHandle, instance: str) -> str:
    pid = shop.state().instance(instance).pid
    return re.escape(" ".join(psutil.Process(pid).cmdline()))


def _host_port(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


def _thaw_everything(shop: ShopHandle) -> None:
    for instance in shop.state().services.values():
        if instance.pid is not None:
            with contextlib.suppress(psutil.Error):
                psutil.Process(instance.pid).resume()


def _workspace(out_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = Path(out_dir).resolve() / f"demo-canary-{stamp}"
    shutil.copytree(REPO / "experiments" / "canary", root / "canary")
    return root


def main(argv: list[str] | None = None) -> int:
    """Run the canary demo and print what each canary did against what it should do."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    console = Console(width=WIDTH)
    try:
        outcomes, problems = run_demo(args.out, console)
    except InoculateError as exc:
        console.print(f"[red]the demo could not start: {exc}[/red]")
        return int(ExitCode.INVALID)
    table = Table(title="inoculate canary demo", title_justify="left")
    for column in ("canary", "experiment", "exit", "expected", "seconds", "why"):
        table.add_column(column)
    surprises = 0
    for outcome in outcomes:
        ok = outcome.exit_code == outcome.expected
        surprises += not ok
        colour = "green" if ok else "red"
        table.add_row(
            outcome.name,
            outcome.experiment,
            f"[{colour}]{_code(outcome.exit_code)}[/{colour}]",
            _code(outcome.expected),
            f"{outcome.seconds:g}",
            outcome.said,
        )
    console.print(table)
    for problem in problems:
        console.print(f"[red]{problem}[/red]", highlight=False)
    if surprises:
        console.print(f"[red]{surprises} canary outcome(s) differ from what was expected[/red]")
    return 1 if surprises or problems else 0


def _code(code: int) -> str:
    try:
        return f"{code} {ExitCode(code).name.lower()}"
    except ValueError:
        return str(code)


if __name__ == "__main__":
    sys.exit(main())
