"""The canary policy's parts that need no running system: the policy file, its windows and
freeze dates, the kill switch's levers, and the blast radius against the faults' reach."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from inoculate.canary.kill_switch import KillSwitch, KillSwitchWatcher, engaged
from inoculate.canary.policy import CanaryPolicy, KindLimit
from inoculate.canary.windows import Windows, why_not_now
from inoculate.model.errors import ExperimentInvalid
from inoculate.model.targets import Reach, reach_of
from inoculate.modes.canary import least_duration_s, load_policy
from inoculate.modes.reach import FaultReach, blast_radius_problems
from tests.canary_support import KillSwitchLever, kill_switch_lever

PARIS = ZoneInfo("Europe/Paris")

POLICY = {
    "scope": "shop-prod",
    "windows": {
        "timezone": "Europe/Paris",
        "allowed": [{"days": ["mon", "tue", "wed", "thu"], "hours": "10:00-16:00"}],
        "freeze": ["2026-12-20..2027-01-04", "2026-11-26"],
    },
    "max_duration_s": 600,
    "blast_radius": {"process": {"max_count": 1}, "docker": {"max_count": 2, "max_percent": 50}},
    "error_budget": {"period": "30d", "min_remaining_percent": 50},
    "burn_rate": {"long_window_s": 60, "short_window_s": 5, "threshold": 14.4},
    "kill_switch": {"file": "/run/inoculate/STOP"},
}


def _windows() -> Windows:
    return CanaryPolicy.model_validate(POLICY).windows


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("local", "duration_s", "allowed"),
    [
        ("2026-11-30 10:00", 600, True),  # a Monday at 10:00
        ("2026-11-30 15:50", 600, True),  # ends at 16:00 exactly
        ("2026-11-30 15:51", 600, False),  # would end past 16:00
        ("2026-11-30 09:59", 60, False),  # before the window
        ("2026-12-04 11:00", 60, False),  # a Friday
        ("2026-11-26 11:00", 60, False),  # a Thursday, frozen
        ("2026-12-21 11:00", 60, False),  # inside the year-end freeze
        ("2027-01-05 11:00", 60, True),  # the Tuesday after it
    ],
)
def test_a_run_must_start_and_end_inside_a_window_and_touch_no_freeze(
    local: str, duration_s: float, allowed: bool
) -> None:
    now = dt.datetime.fromisoformat(local).replace(tzinfo=PARIS)
    reason = why_not_now(_windows(), now, duration_s)
    assert (reason is None) is allowed, reason


def test_windows_are_read_in_the_policys_zone_not_the_clocks() -> None:
    # 09:30 UTC on a Monday in winter is 10:30 in Paris: inside.
    now = dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)
    assert why_not_now(_windows(), now, 60) is None
    # 15:30 UTC is 16:30 in Paris: outside, and the reason says so in Paris time.
    reason = why_not_now(_windows(), dt.datetime(2026, 11, 30, 15, 30, tzinfo=dt.UTC), 60)
    assert reason is not None and "Mon 2026-11-30 16:30" in reason and "Europe/Paris" in reason


def test_a_freeze_that_begins_during_the_run_denies_it() -> None:
    windows = Windows(timezone="UTC", allowed=[{"hours": "00:00-24:00"}], freeze=["2026-12-01"])
    late = dt.datetime(2026, 11, 30, 23, 58, tzinfo=dt.UTC)
    assert "freeze 2026-12-01" in (why_not_now(windows, late, 300) or "")


# --------------------------------------------------------------------------- the policy file


def test_a_policy_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    policy = load_policy(path)
    assert policy.scope == "shop-prod" and policy.blast_radius["docker"].max_percent == 50
    assert policy.burn_rate.threshold == 14.4 and policy.kill_switch.file is not None


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"scope": "Shop Prod"}, "scope", "lowercase letters, digits, '-' and '.'"),
        ({"windows": {**POLICY["windows"], "timezone": "Mars/Olympus"}}, "windows.timezone",
         "IANA time zone"),
        ({"windows": {**POLICY["windows"], "allowed": [{"hours": "16:00-10:00"}]}},
         "windows.allowed[0].hours", "start before the end"),
        ({"windows": {**POLICY["windows"], "allowed": [{"days": ["monday"]}]}},
         "windows.allowed[0].days", "mon, tue"),
        ({"windows": {**POLICY["windows"], "freeze": ["2026-13-01"]}}, "windows.freeze",
         "YYYY-MM-DD"),
        ({"blast_radius": {"pods": {"max_count": 1}}}, "blast_radius", "process, docker"),
        ({"blast_radius": {"docker": {}}}, "blast_radius.docker", "max_count"),
        ({"blast_radius": {"docker": {"max_percent": 150}}}, "blast_radius.docker.max_percent",
         "less than or equal to 100"),
        ({"max_duration_s": 0}, "max_duration_s", "greater than 0"),
        ({"kill_switch": {}}, "kill_switch", "at least one of `file`, `env` and `url`"),
        ({"kill_switch": {"url": "ftp://x"}}, "kill_switch.url", "URL scheme"),
        ({"burn_rate": {"long_window_s": 5, "short_window_s": 60}}, "burn_rate",
         "must be shorter"),
        ({"slo_source": "load"}, "slo_source", "'prometheus'"),
        ({"preflight": [{"url": "ftp://approvals"}]}, "preflight[0].url", "http"),
        ({"windoes": {}}, "windoes", "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_policy_names_the_file_the_field_and_what_was_expected(
    tmp_path: Path, change: dict, field: str, expected: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({**POLICY, **change}))
    with pytest.raises(ExperimentInvalid) as caught:
        load_policy(path)
    messages = {error.field: error.message for error in caught.value.errors}
    assert field in messages, messages
    assert expected in messages[field], messages[field]
    assert str(caught.value).startswith(f"{path}: invalid policy")


@pytest.mark.parametrize("missing", ["windows", "max_duration_s", "blast_radius", "error_budget",
                                     "burn_rate", "kill_switch", "scope"])  # fmt: skip
def test_a_policy_states_every_limit_explicitly(tmp_path: Path, missing: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in POLICY.items() if k != missing}))
    with pytest.raises(ExperimentInvalid) as caught:
        load_policy(path)
    assert {e.field: e.message for e in caught.value.errors}[missing] == "required field is missing"


# --------------------------------------------------------------------------- blast radius


def _fault(reach: Reach | None, where: str = "method[0]") -> FaultReach:
    return FaultReach(where, "a fault", "inoculate.extensions.x.y", reach)


LIMITS = {"docker": KindLimit(max_count=2, max_percent=50), "process": KindLimit(max_count=1)}


def test_faults_within_the_blast_radius_pass() -> None:
    faults = [_fault(reach_of("docker", 4, count=1)), _fault(reach_of("docker", 4, percentage=25))]
    assert blast_radius_problems(faults, LIMITS) == []


@pytest.mark.parametrize(
    ("faults", "said"),
    [
        ([reach_of("docker", 4, count=3)], "could hit 75 %"),
        (
            [reach_of("docker", 10, percentage=30)],
            "3 targets in all (method[0] (a fault): 3), above",
        ),
        ([reach_of("docker", 4, count=1)] * 3, "3 targets in all"),
        ([reach_of("docker", 4)], "could hit 100 %"),  # every match
        ([reach_of("docker", None, percentage=10)], "cannot be told"),  # daemon unreachable
        ([Reach("process", 10, 100.0, "max_processes=10")], "10 targets in all"),
        ([Reach("kubernetes", 1, 10.0, "one pod")], "kubernetes faults are not allowed"),
        ([None], "not one of inoculate's faults"),
    ],
)
def test_faults_that_could_exceed_the_blast_radius_are_refused(
    faults: list[Reach | None], said: str
) -> None:
    problems = blast_radius_problems([_fault(reach) for reach in faults], LIMITS)
    assert any(said in problem for problem in problems), problems


def test_the_least_duration_adds_pauses_durations_warm_up_and_settling() -> None:
    from inoculate.experiment.spec import InoculateSpec

    spec = InoculateSpec.model_validate({"settle_s": 5})
    experiment = {
        "steady-state-hypothesis": {"probes": [{"pauses": {"before": 1}}]},
        "method": [{"provider": {"arguments": {"duration_s": 20}}, "pauses": {"after": 10}}],
        "rollbacks": [{"pauses": {"before": 2.5, "after": True}}],
    }
    assert least_duration_s(experiment, spec) == 38.5


# --------------------------------------------------------------------------- kill switch


@pytest.fixture
def lever() -> Iterator[tuple[str, type[KillSwitchLever]]]:
    with kill_switch_lever() as served:
        yield served


def test_each_lever_engages_the_switch(
    tmp_path: Path, lever: tuple[str, type[KillSwitchLever]]
) -> None:
    url, handler = lever
    stop = tmp_path / "STOP"
    switch = KillSwitch(file=stop, env="CANARY_STOP", url=url)
    assert engaged(switch, environ={}) is None
    assert engaged(switch, environ={"CANARY_STOP": "0"}) is None
    assert "CANARY_STOP is set" in (engaged(switch, environ={"CANARY_STOP": "yes"}) or "")
    handler.answer = b'{"engaged": true}'
    assert f"{url} says engaged" in (engaged(switch, environ={}) or "")
    stop.touch()
    assert f"{stop} exists" in (engaged(switch, environ={}) or "")


@pytest.mark.parametrize(
    ("status", "answer", "delay_s", "said"),
    [
        (500, b"{}", 0.0, "answered HTTP 500"),
        (200, b"engaged", 0.0, "JSONDecodeError"),
        (200, b'{"engaged": "yes"}', 0.0, 'not {"engaged": true|false}'),
        (200, b'{"engaged": false}', 1.0, "no answer within 0.3 s"),
    ],
)
def test_a_url_that_gives_no_clear_answer_engages_unless_told_to_ignore_it(
    lever: tuple[str, type[KillSwitchLever]], status: int, answer: bytes, delay_s: float, said: str
) -> None:
    url, handler = lever
    handler.status, handler.answer, handler.delay_s = status, answer, delay_s
    reason = engaged(KillSwitch(url=url, url_timeout_s=0.3), environ={})
    assert reason is not None and "unknown, so engaged" in reason and said in reason, reason
    assert engaged(KillSwitch(url=url, url_timeout_s=0.3, on_unknown="ignore"), environ={}) is None


def test_the_watcher_calls_back_once_soon_after_the_file_appears(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    calls: list[tuple[float, str]] = []
    watcher = KillSwitchWatcher(
        KillSwitch(file=stop), lambda r: calls.append((time.monotonic(), r))
    )
    watcher.start()
    try:
        time.sleep(0.3)
        assert calls == []
        pulled = time.monotonic()
        stop.touch()
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # a second call would come within a few checks
    finally:
        watcher.stop()
    assert len(calls) == 1 and "exists" in calls[0][1]
    assert calls[0][0] - pulled < 0.5


def test_a_slow_url_does_not_delay_the_file(
    tmp_path: Path, lever: tuple[str, type[KillSwitchLever]]
) -> None:
    url, handler = lever
    handler.delay_s = 2.0  # longer than the URL's timeout, answered "not engaged" if at all
    stop = tmp_path / "STOP"
    switch = KillSwitch(file=stop, url=url, url_timeout_s=3, on_unknown="ignore")
    calls: list[float] = []
    watcher = KillSwitchWatcher(switch, lambda r: calls.append(time.monotonic()))
    watcher.start()
    try:
        time.sleep(0.2)
        pulled = time.monotonic()
        stop.touch()
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        watcher.stop()
    assert calls and calls[0] - pulled < 0.5


def test_all_day_windows_on_consecutive_days_let_a_run_cross_midnight() -> None:
    every_day = Windows(timezone="UTC", allowed=[{"hours": "00:00-24:00"}])
    late = dt.datetime(2026, 11, 30, 23, 58, tzinfo=dt.UTC)
    assert why_not_now(every_day, late, 600) is None
    weekdays = Windows(timezone="UTC", allowed=[{"days": ["mon"], "hours": "00:00-24:00"}])
    assert why_not_now(weekdays, late, 120) is None  # ends at midnight exactly
    assert "would end at Tue 00:08" in (why_not_now(weekdays, late, 600) or "")


def test_a_kill_says_when_what_it_kills_could_not_be_started_again(tmp_path: Path) -> None:
    import subprocess

    from inoculate.extensions.process.preview import REACH

    title = f"fake-master-{tmp_path.name}: master process"
    # A process that rewrote its command line, as nginx's master does.
    rewritten = subprocess.Popen(["bash", "-c", f'exec -a "{title}" sleep 60'])
    try:
        deadline = time.monotonic() + 5
        kill = {"pattern": f"^{title}", "max_processes": 1}
        while time.monotonic() < deadline and "no process" in (
            REACH["kill"](kill, {}).problem or "no process"
        ):
            time.sleep(0.05)
        problem = REACH["kill"](kill, {}).problem or ""
        assert f"pid {rewritten.pid}" in problem and "declare restart_command" in problem
        assert REACH["kill"]({**kill, "restart_command": "sleep 60"}, {}).problem is None
        assert REACH["freeze"](kill, {}).problem is None  # a freeze is undone by SIGCONT
        assert "more than max_processes=0" not in (REACH["kill"](kill, {}).problem or "")
        missing = REACH["kill"]({"pattern": "^no-such-thing-xyz", "max_processes": 1}, {})
        assert "no process matches" in (missing.problem or "")
    finally:
        rewritten.kill()
        rewritten.wait()


def test_a_key_written_twice_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    from inoculate.experiment.loading import load_document

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY) + "scope: another-scope\n")
    with pytest.raises(ExperimentInvalid) as caught:
        load_policy(path)
    assert "has the key 'scope' twice in one mapping (line" in str(caught.value)
    nested = tmp_path / "experiment.yaml"
    nested.write_text("title: t\nmethod:\n  - name: a\n    name: b\n")
    with pytest.raises(ExperimentInvalid, match=r"key 'name' twice .*line 4, column 5"):
        load_document(nested)
    # The same key in two mappings, or in a list of mappings, is fine.
    fine = tmp_path / "fine.yaml"
    fine.write_text("a: {x: 1}\nb: {x: 2}\nc: [{x: 1}, {x: 2}]\n")
    assert load_document(fine) == {"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]}


@pytest.mark.parametrize(("text", "found"), [("", "an empty file"), ("- a\n- b\n", "a list")])
def test_a_policy_that_is_not_a_mapping_says_what_it_is(
    tmp_path: Path, text: str, found: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentInvalid, match=f"expected a mapping of scope, .*got {found}"):
        load_policy(path)


def test_readmes_example_policy_is_one_the_canary_accepts() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Production canaries", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = CanaryPolicy.model_validate(yaml.safe_load(example))
    assert policy.scope == "shop-prod" and policy.preflight[0].secret_env == "CANARY_HMAC_KEY"
    assert set(policy.blast_radius) == {"docker", "process"}
