"""No secret value ever reaches a file or the console (issue 8, point 6).

Sentinel secrets from every source a run has — inline in the experiment, the environment,
a ``.env`` var file, a YAML var file — are used where they spread: a fault's target (the
pattern of a freeze, found in the frozen process's command line), an action's output, a
probe whose error repeats its URL, a rollback whose error repeats its argument. Then every
file the run, its reports, the history and a recover wrote, and everything they printed,
is searched for every sentinel.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from inoculate.model.processes import process_status
from tests.support import Workspace

pytestmark = pytest.mark.integration


def _activity(kind: str, name: str, module: str, func: str, **arguments: object) -> dict:  # type: ignore[type-arg]
    provider = {"type": "python", "module": module, "func": func, "arguments": arguments,
                "secrets": ["sec", "vars"]}  # fmt: skip
    return {"type": kind, "name": name, "provider": provider}


def _experiment(marker: str) -> dict:  # type: ignore[type-arg]
    process, probes, test = (
        "inoculate.extensions.process",
        "inoculate.steady_state.probes",
        "tests.activities",
    )
    return {
        "title": "Secrets stay secret",
        "description": "Every secret source, used where a value spreads.",
        "secrets": {
            "sec": {
                "inline": marker,
                "from_env": {"type": "env", "key": "INOCULATE_TEST_SECRET"},
                "from_dotenv": {"type": "env", "key": "INOCULATE_TEST_DOTENV_SECRET"},
            }
        },
        "method": [
            _activity("action", "freeze-by-secret-pattern", process, "freeze", pattern="${inline}"),
            _activity("action", "echo-env-secret", test, "echo", message="token=${from_env}"),
            _activity("probe", "health-with-key", probes, "http_healthy",
                      url="http://127.0.0.1:9/health?key=${from_yaml}", timeout_s=0.5),
        ],
        "rollbacks": [
            _activity("action", "thaw-by-secret-pattern", process, "thaw", pattern="${inline}"),
            _activity("action", "cleanup-that-fails", test, "fail_with",
                      message="password=${from_dotenv}"),
        ],
    }  # fmt: skip


def test_no_sentinel_secret_reaches_any_file_or_the_console(
    workspace: Workspace, tmp_path: Path, sleeper: tuple[psutil.Process, str]
) -> None:
    proc, marker = sleeper  # the frozen process's command line *is* the inline secret
    sentinels = {
        "inline": marker,
        "env": f"env-secret-{uuid.uuid4().hex}",
        "dotenv": f"dotenv-secret-{uuid.uuid4().hex}",
        "yaml": f"yaml-secret-{uuid.uuid4().hex}",
    }
    experiment = tmp_path / "secrets.yaml"
    experiment.write_text(yaml.safe_dump(_experiment(marker), sort_keys=False))
    dotenv = tmp_path / "run.env"
    dotenv.write_text(f"INOCULATE_TEST_DOTENV_SECRET={sentinels['dotenv']}\n")
    var_yaml = tmp_path / "secrets-vars.yaml"
    var_yaml.write_text(yaml.safe_dump({"secrets": {"vars": {"from_yaml": sentinels["yaml"]}}}))
    os.environ["INOCULATE_TEST_SECRET"] = sentinels["env"]
    try:
        run = workspace.run(
            "run", str(experiment), "--var-file", str(dotenv), "--var-file", str(var_yaml)
        )
    finally:
        os.environ.pop("INOCULATE_TEST_SECRET")
    assert run.code in (1, 3), run.stdout + run.stderr  # the failing cleanup fails the run
    assert process_status(proc.pid) != psutil.STATUS_STOPPED
    run_dir = run.run_dir()
    journal = run.journal()
    # The run really used them (else "not found" would prove nothing).
    assert journal["run"][0]["output"]["processes"], journal["run"][0]
    assert journal["run"][1]["output"]["message"] == "token=***"
    assert "***" in json.dumps(journal["rollbacks"][1])
    report = workspace.run("report", str(run_dir), "--record")
    history = workspace.run("history", "--json")
    recover = workspace.run("recover")
    printed = {
        "run": run.stdout + run.stderr,
        "report": report.stdout + report.stderr,
        "history": history.stdout + history.stderr,
        "recover": recover.stdout + recover.stderr,
    }
    leaks = [
        f"{source} secret in {where}"
        for where, text in printed.items()
        for source, value in sentinels.items()
        if value in text
    ]
    for path in workspace.root.rglob("*"):
        if path.is_file() and path.resolve() not in (experiment.resolve(), dotenv, var_yaml):
            data = path.read_bytes()
            leaks += [
                f"{source} secret in {path.relative_to(workspace.root)}"
                for source, value in sentinels.items()
                if value.encode() in data
            ]
    assert not leaks, leaks
    assert (run_dir / "report.html").is_file() and (run_dir / "faults.jsonl").is_file()
    secrets_dir = workspace.ledger.with_name("ledger.jsonl.secrets")
    assert not secrets_dir.exists() or not any(secrets_dir.iterdir())  # settled: forgotten


def test_a_secret_kill_pattern_is_kept_out_of_the_ledger_and_the_target_still_comes_back(
    workspace: Workspace, tmp_path: Path, sleeper: tuple[psutil.Process, str]
) -> None:
    proc, marker = sleeper
    experiment = tmp_path / "kill-secret.yaml"
    kill = _activity(
        "action", "kill-by-secret-pattern", "inoculate.extensions.process", "kill",
        pattern="${inline}", signal="SIGKILL",
    )  # fmt: skip
    experiment.write_text(
        yaml.safe_dump(
            {
                "title": "A secret kill pattern",
                "description": "No rollback: the safety net must bring it back.",
                "secrets": {"sec": {"inline": marker}},
                "method": [kill],
            },
            sort_keys=False,
        )
    )
    run = workspace.run("run", str(experiment))
    printed = run.stdout + run.stderr
    back = [
        p for p in psutil.process_iter(["pid", "cmdline"]) if marker in (p.info["cmdline"] or [])
    ]
    try:
        assert proc.pid not in [p.pid for p in back]  # it really was killed ...
        assert len(back) == 1, printed  # ... and started again from its recorded command line
        assert "inoculate reverted it" in printed, printed
        # The check after the rollbacks looked for the real pattern (not its token).
        [fault] = run.summary()["faults"]
        assert fault["restored"] is True, fault
        assert "⟪secret" not in json.dumps(run.summary()) and "⟪secret" not in printed
        assert workspace.outstanding_faults() == []
        leaks = [
            str(path.relative_to(workspace.root))
            for path in workspace.root.rglob("*")
            if path.is_file() and path != experiment and marker.encode() in path.read_bytes()
        ]
        assert not leaks and marker not in printed, leaks
        timeline = (run.run_dir() / "faults.jsonl").read_text().splitlines()
        injected = json.loads(timeline[0])
        assert injected["target"]["pattern"].startswith("⟪secret:"), injected
    finally:
        for process in back:
            process.kill()
