"""Gamedays for the tests: short experiments on the embedded shop, a gameday file around
them, and a gameday process driven through its plain mode's standard input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO, wait_for

LOCUSTFILE = REPO / "experiments" / "shop" / "locustfile.py"
ROLES = {"owner": "Ana", "coordinator": "Ben", "reporter": "Chi", "observers": ["Dee"]}


def _control() -> list[dict[str, Any]]:
    provider = {"type": "python", "module": "inoculate.extensions.control"}
    return [{"name": "inoculate", "provider": provider}]


def freeze_experiment(
    folder: Path, name: str, service: str = "orders", freeze_s: float = 3
) -> Path:
    """An experiment that freezes ``service`` of its own embedded shop (no load: ~6 s)."""
    document = {
        "title": f"{name}: {service} frozen {freeze_s:g}s",
        "description": "A short freeze for the gameday tests.",
        "controls": _control(),
        "extensions": [{"name": "inoculate", "system": {"embedded": "shop"}}],
        "method": [_action("freeze", "freeze", {"service": service, "duration_s": freeze_s})],
        "rollbacks": [_action("ensure-running", "ensure_running", {"service": service})],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def load_experiment(folder: Path, name: str) -> Path:
    """An experiment with load and an SLO: the catalog frozen 3 s under browsing (~17 s)."""
    document = {
        "title": f"{name}: browsing with the catalog frozen",
        "description": "Load, an SLO and a fault, for the gameday tests.",
        "controls": _control(),
        "extensions": [
            {
                "name": "inoculate",
                "system": {
                    "embedded": "shop",
                    "knobs": {
                        "gateway_timeout_s": 0.3,
                        "gateway_retries": 1,
                        "gateway_fallback": "cache",
                    },
                },
                "load": {
                    "locustfile": str(LOCUSTFILE),
                    "model": "open",
                    "rate_rps": 40,
                    "max_in_flight": 100,
                    "warmup_s": 1,
                    "request_timeout_s": 2.0,
                },
                "slos": [
                    {
                        "name": "browse-availability",
                        "sli": "availability",
                        "endpoint": "GET /products",
                        "objective": 99.0,
                        "window_s": 3,
                    }
                ],
            }
        ],
        "steady-state-hypothesis": {
            "title": "Browsing works",
            "probes": [
                {
                    "type": "probe",
                    "name": "slos-met",
                    "tolerance": {"type": "jsonpath", "path": "$.met", "expect": True},
                    "provider": {
                        "type": "python",
                        "module": "inoculate.steady_state.probes",
                        "func": "slos_met",
                    },
                }
            ],
        },
        "method": [
            {
                **_action("freeze", "freeze", {"service": "catalog", "duration_s": 3}),
                "pauses": {"after": 1},
            }
        ],
        "rollbacks": [_action("ensure-running", "ensure_running", {"service": "catalog"})],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _action(name: str, func: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "action",
        "name": f"{name}",
        "provider": {
            "type": "python",
            "module": "inoculate.extensions.process",
            "func": func,
            "arguments": arguments,
        },
    }


def gameday_file(
    folder: Path,
    experiments: Sequence[Path | tuple[Path, bool]],
    prerequisites: Sequence[dict[str, Any]] = (),
    title: str = "Test gameday",
) -> Path:
    """A gameday file naming ``experiments`` (a (path, hold) pair for a hold point)."""
    items = []
    for item in experiments:
        path, hold = item if isinstance(item, tuple) else (item, False)
        items.append({"file": path.name, **({"hold": True} if hold else {})})
    document = {
        "title": title,
        "roles": ROLES,
        "prerequisites": list(prerequisites),
        "experiments": items,
    }
    path = folder / "gameday.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass
class Gameday:
    """A gameday process in plain mode, its standard input open for commands."""

    process: subprocess.Popen[str]
    out_dir: Path
    ledger: Path
    stdout: Path
    stderr: Path

    @property
    def gameday_dir(self) -> Path:
        found = wait_for(lambda: sorted(self.out_dir.glob("*-gameday-*")), 30, "the gameday dir")
        return Path(found[-1])

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def events(self) -> list[dict[str, Any]]:
        path = self.gameday_dir / "timeline.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events()]

    def wait_event(self, kind: str, timeout_s: float = 60, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events():
                if event["kind"] == kind and all(event.get(k) == v for k, v in fields.items()):
                    return event
            if self.process.poll() is not None:
                raise AssertionError(f"the gameday exited {self.process.returncode} before {kind}")
            return None

        return wait_for(found, timeout_s, f"timeline event {kind} {fields}")

    def run_dirs(self) -> list[Path]:
        """The run directories so far (none while the gameday is still creating ``runs/``:
        its own directory appears a moment before)."""
        runs = self.gameday_dir / "runs"
        return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def wait_injected(self, timeout_s: float = 60) -> dict[str, Any]:
        """Wait for the current run's first injection; return its faults.jsonl event."""

        def injected() -> dict[str, Any] | None:
            for run_dir in self.run_dirs():
                for line in _lines(run_dir / "faults.jsonl"):
                    if line.get("op") == "inject" and not _reverted(run_dir, line["id"]):
                        return {**line, "run_dir": str(run_dir)}
            if self.process.poll() is not None:
                raise AssertionError(f"the gameday exited {self.process.returncode}")
            return None

        return wait_for(injected, timeout_s, "an injected fault")

    def finish(self, timeout_s: float = 180) -> tuple[int, str, str]:
        """Close its input (if open), wait for its end; its exit code, stdout and stderr."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.process.wait(timeout=timeout_s)
        return self.process.returncode, self.stdout.read_text(), self.stderr.read_text()


def start_gameday(
    path: Path, out_dir: Path, ledger: Path, *args: str, stdin: bool = True
) -> Gameday:
    """Start ``inoculate gameday PATH --plain`` with a ledger of its own (its output goes
    to files beside ``out_dir``: a pipe nobody reads would block it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = out_dir.parent / "gameday.stdout", out_dir.parent / "gameday.stderr"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inoculate.cli",
            "gameday",
            str(path),
            "--plain",
            "--out",
            str(out_dir),
            "--ledger",
            str(ledger),
            "--no-observers",
            *args,
        ],
        cwd=REPO,
        env=gameday_env(),
        text=True,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=stdout.open("w"),
        stderr=stderr.open("w"),
        start_new_session=True,  # its own process group, as a terminal's job would have
    )
    return Gameday(process, out_dir, ledger, stdout, stderr)


def gameday_env() -> dict[str, str]:
    """The environment of a gameday under test: the repository's code, no runbook edits."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "INOCULATE_RUNBOOK_FEEDBACK": "off",
        "PYTHONUNBUFFERED": "1",
    }


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _reverted(run_dir: Path, fault_id: str) -> bool:
    events = _lines(run_dir / "faults.jsonl")
    return any(e.get("op") == "revert" and e.get("id") == fault_id for e in events)


def every_fault_reverted(run_dir: Path) -> bool:
    """Whether every injection in the run's faults.jsonl has its revert."""
    events = _lines(run_dir / "faults.jsonl")
    injected = {e["id"] for e in events if e.get("op") == "inject"}
    reverted = {e["id"] for e in events if e.get("op") == "revert"}
    return injected <= reverted
