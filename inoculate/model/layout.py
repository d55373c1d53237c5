"""The run directory, configuration keys and environment variables: every name, once.

A run directory (``runs/<UTC time>-<title slug>/``) holds::

    inoculate.json   the experiment's inoculate block as JSON (the probes read the SLOs here)
    journal.json     the Chaos Toolkit journal plus our ``inoculate`` section, rewritten
                     atomically after every activity
    summary.json     the typed run summary (inoculate.model.summary), written at the end
    sli.jsonl        one SLI sample per second (inoculate.steady_state.samples)
    prometheus.jsonl every reading of the SLOs' Prometheus sides, one per SLO and second
                     (inoculate.steady_state.server_side), when an SLO has a `prometheus` SLI
    guards.jsonl     every check of the burn-rate guard: the burn rates read, and its trip
    faults.jsonl     the run's inject/revert timeline (survives ledger compaction)
    locust.log       Locust's log;  load/  per-process SLI files of the load, and
                     load/open-second.json, the second still open (while the load runs)
    system/          the embedded system's state directory
    report.html, report.md, report.junit.xml, report.json   the reports

The configuration keys are how activities and probes find their run, also under a plain
``chaos run`` (where the experiment's ``configuration`` block can set them).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "AFTER_STATE_CONFIG_KEY",
    "BASE_DIR_CONFIG_KEY",
    "DEFAULT_LEDGER_PATH",
    "DEFAULT_RUNS_DIR",
    "FAULTS_FILE",
    "GUARDS_FILE",
    "HISTORY_ENV_VAR",
    "JOURNAL_FILE",
    "LEDGER_CONFIG_KEY",
    "LEDGER_ENV_VAR",
    "LIVE_FILE",
    "LOAD_DIR",
    "LOCUST_LOG_FILE",
    "OPEN_SECOND_FILE",
    "PROMETHEUS_FILE",
    "REPORT_FILES",
    "RUNBOOK_FEEDBACK_ENV_VAR",
    "RUNS_DIR_ENV_VAR",
    "RUNTIME_CONFIG_KEYS",
    "RUN_DIR_CONFIG_KEY",
    "RUN_ID_CONFIG_KEY",
    "SAMPLES_FILE",
    "SECONDS_FILE",
    "SPEC_FILE",
    "SUMMARY_FILE",
    "SYSTEM_CONFIG_KEY",
    "SYSTEM_DIR",
    "SYSTEM_DIR_CONFIG_KEY",
    "new_run_dir",
]

# --- files of a run directory
SPEC_FILE = "inoculate.json"
JOURNAL_FILE = "journal.json"
SUMMARY_FILE = "summary.json"
SAMPLES_FILE = "sli.jsonl"
SECONDS_FILE = "sli-seconds.jsonl"  # each second reduced for reports (reports/per_second.py)
PROMETHEUS_FILE = "prometheus.jsonl"
GUARDS_FILE = "guards.jsonl"
FAULTS_FILE = "faults.jsonl"
LOCUST_LOG_FILE = "locust.log"
LIVE_FILE = "live.jsonl"  # phases, activities, SLO values as they happen (session/live_events)
LOAD_DIR = "load"
OPEN_SECOND_FILE = f"{LOAD_DIR}/open-second.json"
SYSTEM_DIR = "system"
REPORT_FILES = {
    "html": "report.html",
    "md": "report.md",
    "junit": "report.junit.xml",
    "json": "report.json",
}

# --- configuration keys (set by the runner or the control; settable in an experiment)
RUN_DIR_CONFIG_KEY = "inoculate_run_dir"
RUN_ID_CONFIG_KEY = "inoculate_run_id"
LEDGER_CONFIG_KEY = "inoculate_ledger"
BASE_DIR_CONFIG_KEY = "inoculate_base_dir"
SYSTEM_CONFIG_KEY = "inoculate_system"
SYSTEM_DIR_CONFIG_KEY = "inoculate_system_dir"
# Set by `inoculate run`: the session judges the after steady state after the rollbacks.
AFTER_STATE_CONFIG_KEY = "inoculate_after_state_after_rollbacks"
# What a run sets whatever the experiment declares: `${inoculate_run_dir}` is always defined.
RUNTIME_CONFIG_KEYS = (
    RUN_DIR_CONFIG_KEY,
    RUN_ID_CONFIG_KEY,
    LEDGER_CONFIG_KEY,
    BASE_DIR_CONFIG_KEY,
    SYSTEM_CONFIG_KEY,
    SYSTEM_DIR_CONFIG_KEY,
)

# --- environment variables and defaults
LEDGER_ENV_VAR = "INOCULATE_LEDGER"
DEFAULT_LEDGER_PATH = Path(".inoculate") / "ledger.jsonl"
RUNS_DIR_ENV_VAR = "INOCULATE_RUNS_DIR"
DEFAULT_RUNS_DIR = Path("runs")
HISTORY_ENV_VAR = "INOCULATE_HISTORY"
RUNBOOK_FEEDBACK_ENV_VAR = "INOCULATE_RUNBOOK_FEEDBACK"


def new_run_dir(title: str, parent: Path = DEFAULT_RUNS_DIR) -> Path:
    """Return a fresh run directory path under ``parent``: ``<UTC time>-<title slug>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:48] or "experiment"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return Path(parent) / f"{stamp}-{slug}"
