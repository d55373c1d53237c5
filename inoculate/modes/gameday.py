"""``inoculate gameday``: run a gameday's experiments in order, with people in the loop.

Before anything starts the gameday file and every experiment it names are validated (bad
input: exit 2, nothing started, no directory written). Then, in the gameday directory
(:mod:`inoculate.gameday.layout`): the prerequisites are checked (HTTP, Prometheus, and the
manual ones the coordinator ticks); each experiment runs in turn as its own ``inoculate run``
child process, held first when the file or the coordinator says so; the gameday report is
written at the end.

Each experiment is a child process so that the runner is exactly ``inoculate run`` — its
signals, its journal, its rollbacks — and so that the console or the page can never slow
down or break a run: they read what the runner writes (:mod:`inoculate.gameday.live`).
Aborting sends the child SIGINT: it stops its method, its rollbacks revert every fault, it
exits 3. The child gets SIGTERM (same effect) if the gameday process dies, so a killed
gameday leaves nothing injected once its child has rolled back; ``inoculate recover``
settles whatever a SIGKILL of both left, and ``--resume DIR`` continues with the next
experiment, keeping the timeline and its notes.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inoculate.experiment.loading import load_document
from inoculate.experiment.validation import pydantic_field_error, validate_experiment
from inoculate.faults.ledger import FaultLedger, ledger_from_configuration
from inoculate.faults.protocol import revert_outstanding
from inoculate.gameday.control import GamedayControl
from inoculate.gameday.layout import (
    LOGS_DIR,
    META_FILE,
    RUNS_DIR,
    SPEC_COPY,
    log_file,
    new_gameday_dir,
)
from inoculate.gameday.prerequisites import run_check
from inoculate.gameday.spec import GamedaySpec
from inoculate.gameday.timeline import GamedayTimeline, read_events
from inoculate.model.errors import ExperimentInvalid, FieldError
from inoculate.model.files import read_json, write_json_atomic
from inoculate.model.layout import REPORT_FILES, SUMMARY_FILE
from inoculate.model.processes import is_alive, process_start_time
from inoculate.model.status import ExitCode
from inoculate.modes.run import load_run_variables
from inoculate.reports.gameday import publish_gameday

__all__ = [
    "GamedayPlan",
    "GamedayRunner",
    "finished_indices",
    "load_gameday",
    "plan_gameday",
    "plan_resume",
]

# How long a child may take to create its run directory before it is started for nothing.
RUN_DIR_WAIT_S = 120.0
PR_SET_PDEATHSIG = 1
# Looked up now, in the parent: between fork and exec the child only calls it.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def load_gameday(path: Path, variables: Mapping[str, Any] | None = None) -> GamedaySpec:
    """Read and validate a gameday file, with ``${NAME}`` in its strings replaced by the
    ``--var`` of that name; raise :class:`ExperimentInvalid` naming the file, each field and
    what was expected."""
    document = load_document(path, "gameday")
    if not isinstance(document, Mapping):
        found = "an empty file" if document is None else f"a {type(document).__name__}"
        expected = "a mapping of title, roles, prerequisites and experiments"
        raise ExperimentInvalid(
            str(path), [FieldError("", f"expected {expected}, got {found}")], "gameday"
        )
    problems: list[FieldError] = []
    document = _substituted(document, dict(variables or {}), "", problems)
    if problems:
        raise ExperimentInvalid(str(path), problems, "gameday")
    try:
        return GamedaySpec.model_validate(document)
    except ValidationError as exc:
        errors = [pydantic_field_error("", error) for error in exc.errors()]
        raise ExperimentInvalid(str(path), errors, "gameday") from None


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substituted(
    value: Any, variables: dict[str, Any], where: str, problems: list[FieldError]
) -> Any:
    """``value`` with every ``${NAME}`` in its strings replaced by the variable NAME."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                problems.append(FieldError(where, f"expected a --var named {name} for ${{{name}}}"))
                return match.group(0)
            return str(variables[name])

        return _VARIABLE.sub(replace, value)
    if isinstance(value, Mapping):
        return {
            key: _substituted(item, variables, f"{where}.{key}" if where else str(key), problems)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _substituted(item, variables, f"{where}[{i}]", problems) for i, item in enumerate(value)
        ]
    return value


@dataclass(frozen=True)
class GamedayPlan:
    """A validated gameday, ready to run: nothing has been written yet (unless resuming)."""

    source: Path  # the gameday file (the copy inside the directory when resuming)
    spec: GamedaySpec
    experiments: tuple[Path, ...]  # absolute paths, in agenda order
    titles: tuple[str, ...]
    variables: tuple[str, ...]  # --var NAME=VALUE, passed on to each run
    var_files: tuple[str, ...]
    ledger: Path | None
    gameday_dir: Path | None = None  # set when resuming
    done: frozenset[int] = frozenset()


def plan_gameday(
    path: Path,
    variables: Mapping[str, Any],
    raw_variables: Sequence[str],
    var_files: Sequence[str],
    ledger: Path | None,
    base: Path | None = None,
) -> GamedayPlan:
    """Validate the gameday file and every experiment in it (with the run's variables);
    raise :class:`ExperimentInvalid` for the first bad file. Nothing is started.
    Experiment paths are read from ``base`` (the gameday file's folder by default)."""
    config_vars, secret_vars = load_run_variables(variables, var_files)
    spec = load_gameday(path, config_vars)
    base = Path(base or Path(path).resolve().parent)
    experiments, titles = [], []
    for position, item in enumerate(spec.experiments):
        file = item.file if item.file.is_absolute() else base / item.file
        if not file.is_file():
            raise ExperimentInvalid(
                str(path),
                [
                    FieldError(
                        f"experiments[{position}].file",
                        f"expected an experiment file; {file} does not exist",
                    )
                ],
                "gameday",
            )
        validated = validate_experiment(file, dict(config_vars), dict(secret_vars))
        experiments.append(file.resolve())
        titles.append(str(validated.experiment.get("title", file.stem)))
    return GamedayPlan(
        source=Path(path).resolve(),
        spec=spec,
        experiments=tuple(experiments),
        titles=tuple(titles),
        variables=tuple(raw_variables),
        var_files=tuple(str(Path(f).resolve()) for f in var_files),
        ledger=Path(ledger).resolve() if ledger else None,
    )


def plan_resume(
    gameday_dir: Path,
    variables: Mapping[str, Any],
    raw_variables: Sequence[str],
    ledger: Path | None,
) -> GamedayPlan:
    """Validate a gameday directory to continue: its copy of the gameday file, the
    experiments (at the paths recorded when it started) and its timeline."""
    gameday_dir = Path(gameday_dir).resolve()
    meta = read_json(gameday_dir / META_FILE)
    if not isinstance(meta, dict) or not (gameday_dir / SPEC_COPY).is_file():
        raise ExperimentInvalid(
            str(gameday_dir),
            [FieldError("", f"expected a gameday directory (with {META_FILE} and {SPEC_COPY})")],
            "gameday directory",
        )
    events = read_events(gameday_dir)
    running = _still_running(events)
    if running is not None:
        raise ExperimentInvalid(
            str(gameday_dir),
            [
                FieldError(
                    "",
                    f"this gameday is still running (pid {running}); expected one "
                    "whose process has gone",
                )
            ],
            "gameday directory",
        )
    started = next((e for e in events if e["kind"] == "gameday_started"), None)
    agenda = len(started.get("experiments") or []) if started else 0
    if started and len(finished_indices(events)) >= agenda:
        raise ExperimentInvalid(
            str(gameday_dir),
            [FieldError("", "every experiment of this gameday has run; nothing to resume")],
            "gameday directory",
        )
    # The agenda that ran (the copy), its experiments read from where the original lived.
    plan = plan_gameday(
        gameday_dir / SPEC_COPY,
        variables,
        raw_variables,
        [str(f) for f in meta.get("var_files", [])],
        ledger or (Path(meta["ledger"]) if meta.get("ledger") else None),
        base=Path(str(meta.get("source"))).parent,
    )
    return GamedayPlan(
        **{**plan.__dict__, "gameday_dir": gameday_dir, "done": finished_indices(events)}
    )


def _still_running(events: Sequence[Mapping[str, Any]]) -> int | None:
    """The pid of the gameday process that wrote these events, if it still runs."""
    started = [e for e in events if e["kind"] == "gameday_started"]
    if not started or events[-1]["kind"] == "gameday_finished":
        return None
    pid, when = started[-1].get("pid"), started[-1].get("pid_started")
    return int(pid) if isinstance(pid, int) and is_alive(pid, when) else None


def finished_indices(events: Sequence[Mapping[str, Any]]) -> frozenset[int]:
    """The agenda items a gameday already went through: finished, skipped, or started by a
    gameday process that died (they are not run again)."""
    kinds = ("experiment_started", "experiment_finished", "skip")
    return frozenset(int(e["index"]) for e in events if e["kind"] in kinds)


@dataclass
class GamedayRunner:
    """Runs a :class:`GamedayPlan`; drive it from a worker thread, the UI in the main one."""

    plan: GamedayPlan
    out_dir: Path
    confirmed: Sequence[str] = ()  # manual prerequisites ticked on the command line
    python: str = sys.executable
    gameday_dir: Path = field(init=False)
    timeline: GamedayTimeline = field(init=False)
    control: GamedayControl = field(init=False)
    exit_code: int | None = None
    status: str | None = None
    report_error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.plan.gameday_dir is not None:
            self.gameday_dir = self.plan.gameday_dir
        else:
            self.gameday_dir = new_gameday_dir(self.plan.spec.title, self.out_dir).resolve()
            shutil.copyfile(self.plan.source, self.gameday_dir / SPEC_COPY)
            write_json_atomic(
                self.gameday_dir / META_FILE,
                {
                    "source": str(self.plan.source),
                    "var_files": list(self.plan.var_files),
                    "ledger": str(self.plan.ledger) if self.plan.ledger else None,
                    "created_at": time.time(),
                },
            )
        (self.gameday_dir / RUNS_DIR).mkdir(exist_ok=True)
        (self.gameday_dir / LOGS_DIR).mkdir(exist_ok=True)
        self.timeline = GamedayTimeline(self.gameday_dir)
        self.control = GamedayControl(self.timeline)
        self.control.expect_manual(
            [p.name for p in self.plan.spec.prerequisites if p.check == "manual"]
        )

    # ------------------------------------------------------------------ the whole gameday

    def run(self) -> int:
        """Run the gameday to its end and write its report; return its exit code (0 passed,
        1 an experiment failed, 3 aborted or interrupted, 4 prerequisites not met)."""
        try:
            self.exit_code, self.status = self._run()
        except BaseException:
            self.exit_code, self.status = int(ExitCode.INTERRUPTED), "interrupted"
            self.timeline.append("gameday_finished", status=self.status, exit_code=self.exit_code)
            raise
        finally:
            self._publish()
            self.finished.set()
        return self.exit_code

    def _publish(self) -> None:
        """The gameday report; its failure is kept in ``report_error``, the outcome stands."""
        try:
            publish_gameday(self.gameday_dir)
        except Exception as exc:  # the gameday's outcome stands whatever its report does
            self.report_error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> tuple[int, str]:
        spec = self.plan.spec
        resumed = self.plan.gameday_dir is not None
        if resumed:
            self._settle_dead_runs()
        self.timeline.append(
            "gameday_started",
            title=spec.title,
            roles=spec.roles.model_dump(),
            experiments=[
                {"index": i, "title": title, "file": str(file), "hold": item.hold}
                for i, (title, file, item) in enumerate(
                    zip(self.plan.titles, self.plan.experiments, spec.experiments, strict=True)
                )
            ],
            prerequisites=[
                {"name": p.name, "check": p.check, **({"text": p.manual} if p.manual else {})}
                for p in spec.prerequisites
            ],
            resumed=resumed,
            done=sorted(self.plan.done),
            pid=os.getpid(),
            pid_started=process_start_time(os.getpid()),
        )
        if not self._prerequisites_hold():
            # Resumed, the gameday ran experiments before: it stays unfinished (resumable).
            ran = any(e["kind"] == "experiment_finished" for e in read_events(self.gameday_dir))
            return self._finish("interrupted" if ran else "not-started", ExitCode.SKIPPED)
        for index, file in enumerate(self.plan.experiments):
            if index in self.plan.done:
                continue
            if self.control.aborted is not None:
                break
            title = self.plan.titles[index]
            if self._held_or_skipped(index, title):
                continue
            if self.control.aborted is not None:
                break
            if self._run_experiment(index, file, title) in ("aborted", "interrupted"):
                break
        if self.control.aborted is not None:
            return self._finish("aborted", ExitCode.INTERRUPTED)
        statuses = [
            e.get("status")
            for e in read_events(self.gameday_dir)
            if e["kind"] == "experiment_finished"
        ]
        if any(s in ("aborted", "interrupted") for s in statuses):
            # Also an experiment a killed gameday left unfinished, even once resumed.
            return self._finish("interrupted", ExitCode.INTERRUPTED)
        if all(s == "passed" for s in statuses):
            return self._finish("passed", ExitCode.PASSED)
        return self._finish("failed", ExitCode.FAILED)

    def _finish(self, status: str, code: ExitCode) -> tuple[int, str]:
        self.timeline.append("gameday_finished", status=status, exit_code=int(code))
        return int(code), status

    # ------------------------------------------------------------------ prerequisites

    def _prerequisites_hold(self) -> bool:
        failed: list[str] = []
        manual: list[str] = []
        for prerequisite in self.plan.spec.prerequisites:
            if prerequisite.check == "manual":
                manual.append(prerequisite.name)
                continue
            result = run_check(prerequisite)
            self.timeline.append(
                "prerequisite",
                name=result.name,
                check=result.check,
                ok=result.ok,
                detail=result.detail,
            )
            if not result.ok:
                failed.append(result.name)
        coordinator = self.plan.spec.roles.coordinator
        for name in [n for n in manual if n in self.confirmed]:
            self.timeline.append(
                "prerequisite",
                name=name,
                check="manual",
                ok=True,
                detail=f"confirmed by {coordinator} on the command line (--confirm)",
                by=coordinator,
            )
        asked = [n for n in manual if n not in self.confirmed]
        if asked and not failed:
            texts = {p.name: p.manual for p in self.plan.spec.prerequisites}
            for name in self.control.unanswered(asked):
                self.timeline.append("prerequisite_asked", name=name, text=texts.get(name))
            answers = self.control.ask(asked, stop=lambda: False)
            for name in asked:
                ok, by = answers.get(name, (False, ""))
                detail = (
                    f"confirmed by {by}"
                    if ok
                    else f"refused by {by}"
                    if by
                    else "not confirmed (nobody could answer: --confirm NAME ticks it up front)"
                )
                self.timeline.append(
                    "prerequisite", name=name, check="manual", ok=ok, detail=detail, by=by or None
                )
                if not ok:
                    failed.append(name)
        if failed:
            self.timeline.append("prerequisites_failed", failed=failed)
            return False
        return True

    # ------------------------------------------------------------------ one agenda item

    def _held_or_skipped(self, index: int, title: str) -> bool:
        if self.control.take_skip():
            self.timeline.append(
                "skip", index=index, title=title, by=self.plan.spec.roles.coordinator
            )
            return True
        hold_point = self.plan.spec.experiments[index].hold
        asked = self.control.take_hold()
        left = self._faults_left_behind()
        if hold_point or asked or left:
            if left:
                reason = f"a fault was left in place: {left}; `inoculate recover` reverts it"
            else:
                reason = "hold point" if hold_point else "requested"
            by = self.plan.spec.roles.coordinator if asked else None
            self.timeline.append("hold", index=index, title=title, by=by, reason=reason)
            released = self.control.wait_while_held(stop=lambda: False, index=index)
            if left and not released and self.control.aborted is None:
                # Nobody can decide: never inject on top of a fault nobody reverted.
                self.control.abort("inoculate", f"nobody can hold the gameday and {reason}")
                return True
            if not released and self.control.aborted is None:
                self.timeline.append(
                    "continue",
                    index=index,
                    by=None,
                    reason="nobody can release the hold (no console, standard input closed)",
                )
            if self.control.take_skip():
                self.timeline.append(
                    "skip", index=index, title=title, by=self.plan.spec.roles.coordinator
                )
                return True
        return False

    def _faults_left_behind(self) -> str:
        """The faults the last experiment run left in place (not reverted, or their target
        not restored), in words; empty when none."""
        finished = [e for e in read_events(self.gameday_dir) if e["kind"] == "experiment_finished"]
        if not finished or not finished[-1].get("run_dir"):
            return ""
        summary = read_json(Path(finished[-1]["run_dir"]) / SUMMARY_FILE)
        if not isinstance(summary, dict):
            return ""
        left = [str(f) for f in summary.get("faults_left") or []]
        for fault in summary.get("faults") or []:
            if isinstance(fault, dict) and fault.get("restored") is False:
                name = fault.get("description") or fault.get("kind")
                detail = fault.get("restored_detail")
                left.append(f"{name} not restored" + (f" ({detail})" if detail else ""))
        return "; ".join(left)

    def _run_experiment(self, index: int, file: Path, title: str) -> str:
        runs = self.gameday_dir / RUNS_DIR
        before = {p.name for p in runs.iterdir()}
        log = log_file(self.gameday_dir, index, title)
        command = [self.python, "-m", "inoculate.cli", "run", str(file), "--out", str(runs)]
        for variable in self.plan.variables:
            command += ["--var", variable]
        for var_file in self.plan.var_files:
            command += ["--var-file", var_file]
        if self.plan.ledger is not None:
            command += ["--ledger", str(self.plan.ledger)]
        with open(log, "ab") as output:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                # Its own session: a terminal's Ctrl+C or hang-up reaches the gameday, which
                # aborts the run with SIGINT; the run never dies of a hang-up without rollbacks.
                start_new_session=True,
                env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
            )
        interrupt = _interrupter(child)
        self.control.running(index, None, interrupt)
        run_dir = _wait_for_run_dir(runs, before, child)
        self.timeline.append(
            "experiment_started",
            index=index,
            title=title,
            file=str(file),
            run_dir=str(run_dir) if run_dir else None,
            log=str(log.relative_to(self.gameday_dir)),
        )
        self.control.running(index, run_dir, interrupt)
        code = child.wait()
        self.control.running(index, None, None)
        status, score = _outcome(run_dir, code)
        if status == "interrupted" and self.control.aborted is not None:
            status = "aborted"
        self.timeline.append(
            "experiment_finished",
            index=index,
            title=title,
            run_dir=str(run_dir) if run_dir else None,
            status=status,
            exit_code=code,
            score=score,
        )
        return status

    def _settle_dead_runs(self) -> None:
        """Before resuming: revert what this gameday's dead runs left in the ledger."""
        ledger = (
            FaultLedger(self.plan.ledger) if self.plan.ledger else ledger_from_configuration(None)
        )
        mine = str(self.gameday_dir)
        events = read_events(self.gameday_dir)
        started = {e["index"]: e for e in events if e["kind"] == "experiment_started"}
        finished = {e["index"] for e in events if e["kind"] == "experiment_finished"}
        outcomes = revert_outstanding(
            ledger,
            matches=lambda r: (
                bool(r.run_dir and r.run_dir.startswith(mine + os.sep)) and not r.owner_alive()
            ),
        )
        for index, event in sorted(started.items()):
            if index in finished:
                continue
            run_dir = Path(event["run_dir"]) if event.get("run_dir") else None
            status, score = _outcome(run_dir, None)
            reverted = [o.record.description or o.record.kind for o in outcomes if o.reverted]
            self.timeline.append(
                "experiment_finished",
                index=index,
                title=event.get("title"),
                run_dir=event.get("run_dir"),
                status="interrupted" if status in ("interrupted", "unknown") else status,
                exit_code=None,
                score=score,
                reason="the gameday process was killed during this experiment"
                + (f"; reverted on resume: {', '.join(reverted)}" if reverted else ""),
            )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the gameday (the forking thread) dies."""
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _interrupter(child: subprocess.Popen[bytes]) -> Callable[[], None]:
    def interrupt() -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)

    return interrupt


def _wait_for_run_dir(runs: Path, before: set[str], child: subprocess.Popen[bytes]) -> Path | None:
    """The run directory the child created (None if it exited first)."""
    deadline = time.monotonic() + RUN_DIR_WAIT_S
    while time.monotonic() < deadline:
        new = sorted(p for p in runs.iterdir() if p.name not in before and p.is_dir())
        if new:
            return new[0]
        if child.poll() is not None:
            new = sorted(p for p in runs.iterdir() if p.name not in before and p.is_dir())
            return new[0] if new else None
        time.sleep(0.02)
    return None


def _outcome(run_dir: Path | None, code: int | None) -> tuple[str, int | None]:
    """The run's status (from its summary) and score (from its report), as far as known."""
    summary = read_json(run_dir / SUMMARY_FILE) if run_dir is not None else None
    report = read_json(run_dir / REPORT_FILES["json"]) if run_dir is not None else None
    score = None
    if isinstance(report, dict) and isinstance(report.get("score"), dict):
        value = report["score"].get("value")
        score = round(float(value)) if isinstance(value, (int, float)) else None
    if isinstance(summary, dict) and summary.get("status"):
        status = str(summary["status"])
        # A run stopped before its verdict measured nothing: its score is no measure.
        return status, score if status in ("passed", "failed") else None
    by_code = {0: "passed", 1: "failed", 2: "invalid", 3: "interrupted", 4: "skipped-by-guard"}
    return by_code.get(code, "unknown") if code is not None else "unknown", score
