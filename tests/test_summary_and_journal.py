"""The verdict maths of a run (pure) and the journal writer (atomic, no secrets)."""

from __future__ import annotations

import json
from pathlib import Path

from inoculate.model.files import write_json_atomic
from inoculate.model.secrets import REDACTED, scrub, secret_values
from inoculate.session.summarize import RunFacts, summarize
from inoculate.steady_state.monitor import Evaluation, SloMonitor
from inoculate.steady_state.samples import (
    EndpointSecond,
    OpenSecond,
    SliSample,
    encode_histogram,
    new_histogram,
)
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo, ThroughputSlo, evaluate_all
from inoculate.steady_state.store import SliStore

SLO = AvailabilitySlo(name="browse", endpoint="GET /p", objective=99.0, window_s=3)
T0 = 1_000


def _second(t: int, ok: int, failed: int) -> SliSample:
    histogram = new_histogram()
    for _ in range(ok + failed):
        histogram.record_value(5_000)
    endpoint = EndpointSecond(ok + failed, ok + failed, failed, encode_histogram(histogram))
    return SliSample(t=t, endpoints={"GET /p": endpoint})


def _facts(
    samples: list[SliSample], method: tuple[float, float], events: list[dict], **kw
) -> RunFacts:  # type: ignore[no-untyped-def,type-arg]
    evaluations = [
        Evaluation(t=s.t, seen_at=s.t + 1.1, verdicts=tuple(evaluate_all([SLO], samples, s.t)))
        for s in samples
    ]
    defaults = dict(
        title="t",
        slos=[SLO],
        evaluations=evaluations,
        samples=samples,
        fault_events=events,
        method_window=method,
        hypothesis_before=True,
        hypothesis_after=True,
    )
    return RunFacts(**{**defaults, **kw})  # type: ignore[arg-type]


def _fault(injected: float, reverted: float | None) -> list[dict]:  # type: ignore[type-arg]
    events = [
        {
            "op": "inject",
            "id": "f1",
            "kind": "process:kill",
            "description": "SIGKILL service=catalog",
            "target": {"service": "catalog"},
            "at": injected,
        }
    ]
    if reverted is not None:
        events.append({"op": "revert", "id": "f1", "at": reverted})
    return events


def test_an_outage_in_the_method_fails_with_detection_and_recovery_times() -> None:
    # Healthy until 1005, total outage 1005-1007, healthy again from 1008.
    samples = [
        _second(T0 + i, 0 if 5 <= i <= 7 else 100, 100 if 5 <= i <= 7 else 0) for i in range(15)
    ]
    facts = _facts(samples, (T0 + 4.5, T0 + 12.0), _fault(T0 + 5.0, T0 + 12.5))
    summary = _summary(facts)
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    [slo] = summary["slos"]
    assert slo["breached_during_method"] and slo["first_breach"]["t"] == T0 + 5
    assert slo["breaches"][0]["start"] == T0 + 5
    [fault] = summary["faults"]
    assert fault["time_to_detect_s"] == 1.1  # seen at 1006.1, injected at 1005.0
    assert fault["recovered_at"] == T0 + 8 and fault["recovered_by"] == "self-healing"
    assert fault["time_to_recover_s"] == 3.0
    assert "browse" in summary["reasons"][0]


def test_recovery_after_the_rollback_is_measured_from_the_rollback() -> None:
    samples = [
        _second(T0 + i, 0 if 5 <= i <= 9 else 100, 100 if 5 <= i <= 9 else 0) for i in range(15)
    ]
    summary = _summary(
        _facts(samples, (T0 + 4.5, T0 + 9.0), _fault(T0 + 5.0, T0 + 9.5), recovery_objective_s=1.0)
    )
    [fault] = summary["faults"]
    assert fault["recovered_by"] == "rollback"
    assert fault["time_to_recover_s"] == 0.5  # back at 1010, rollback at 1009.5
    assert fault["recovery_objective_met"] is True


def test_a_rollback_within_the_recovered_second_is_the_cause() -> None:
    samples = [
        _second(T0 + i, 0 if 5 <= i <= 9 else 100, 100 if 5 <= i <= 9 else 0) for i in range(15)
    ]
    summary = _summary(_facts(samples, (T0 + 4.5, T0 + 9.0), _fault(T0 + 5.0, T0 + 10.3)))
    [fault] = summary["faults"]
    assert (fault["recovered_at"], fault["recovered_by"]) == (T0 + 10, "rollback")
    assert fault["time_to_recover_s"] == 0.0


def test_recovery_waits_for_every_slo_the_fault_breached_not_only_the_first() -> None:
    # A hang (slow answers, 1005-1006) seen first by latency, then fast failures (1007-1009):
    # latency is met again by the failures, availability is not; back at 1010.
    latency = LatencySlo(name="browse-p95", endpoint="GET /p", percentile=95, threshold_ms=300)
    both = [SLO, latency]

    def second(t: int, ok: int, failed: int, latency_us: int) -> SliSample:
        histogram = new_histogram()
        for _ in range(ok + failed):
            histogram.record_value(latency_us)
        part = EndpointSecond(ok + failed, ok + failed, failed, encode_histogram(histogram))
        return SliSample(t=t, endpoints={"GET /p": part})

    samples = [
        second(T0 + i, 0 if 7 <= i <= 9 else 100, 100 if 7 <= i <= 9 else 0,
               1_000_000 if 5 <= i <= 6 else 5_000)
        for i in range(16)
    ]  # fmt: skip
    evaluations = [
        Evaluation(t=x.t, seen_at=x.t + 1.1, verdicts=tuple(evaluate_all(both, samples, x.t)))
        for x in samples
    ]
    facts = _facts(
        samples, (T0 + 4.5, T0 + 12.0), _fault(T0 + 5.0, T0 + 12.5),
        slos=both, evaluations=evaluations,
    )  # fmt: skip
    [fault] = _summary(facts)["faults"]
    assert fault["detected_by"] == ["browse-p95"]
    assert fault["recovered_at"] == T0 + 10, fault
    assert fault["time_to_recover_s"] == 5.0


def test_a_breach_outside_the_method_does_not_fail_the_run() -> None:
    samples = [_second(T0 + i, 0 if i == 1 else 100, 100 if i == 1 else 0) for i in range(12)]
    summary = _summary(_facts(samples, (T0 + 8.0, T0 + 11.0), []))
    assert summary["status"] == "passed" and summary["reasons"] == []
    assert summary["slos"][0]["breaches"]  # recorded all the same


def test_precedence_of_the_verdicts() -> None:
    samples = [_second(T0 + i, 100, 0) for i in range(5)]
    method = (T0 + 1.0, T0 + 3.0)
    assert _summary(_facts(samples, method, [], hypothesis_before=False))["status"] == "failed"
    failed_action = _summary(_facts(samples, method, [], failed_activities=["kill"]))
    assert failed_action["reasons"] == ["action failed: kill"]
    interrupted = _summary(_facts(samples, method, [], interruption="SIGTERM received"))
    assert (interrupted["status"], interrupted["exit_code"]) == ("interrupted", 3)
    aborted = _summary(_facts(samples, method, [], interruption="aborted: SLO breached"))
    assert aborted["status"] == "aborted"
    left = _summary(_facts(samples, method, [], faults_left=["SIGSTOP service=orders"]))
    assert left["status"] == "failed"


def test_the_monitor_judges_silence_as_zero_traffic(tmp_path: Path) -> None:
    store = SliStore(tmp_path / "sli.jsonl")
    for i in range(4):
        store.append(_second(T0 + i, 100, 0))
    now = [T0 + 4.2]
    monitor = SloMonitor([SLO], SliStore(tmp_path / "sli.jsonl"), clock=lambda: now[0])
    assert [e.t for e in monitor.poll()] == [T0 + 3]
    assert all(v.met for e in monitor.evaluations() for v in e.verdicts)
    now[0] = T0 + 9.0  # the load went silent: no new samples for five seconds
    silent = monitor.poll()
    assert [e.t for e in silent] == [T0 + 4, T0 + 5, T0 + 6]
    assert not silent[-1].verdicts[0].met


FLOOR = ThroughputSlo(name="floor", endpoint="GET /p", min_rps=90, window_s=1)


def _open_second_monitor(tmp_path: Path, now: list[float]) -> tuple[SliStore, SloMonitor]:
    store = SliStore(tmp_path / "sli.jsonl")
    for i in range(4):
        store.append(_second(T0 + i, 100, 0))
    reader = SliStore(tmp_path / "sli.jsonl", open_path=tmp_path / "open-second.json")
    return store, SloMonitor([SLO, FLOOR], reader, clock=lambda: now[0])


def test_a_breach_seen_in_the_open_second_is_when_it_was_seen_once_the_second_confirms_it(
    tmp_path: Path,
) -> None:
    now = [T0 + 4.3]
    store, monitor = _open_second_monitor(tmp_path, now)
    # 0.3 s into second T0 + 4: half its answers so far failed; the throughput so far is
    # low, as it always is in an open second.
    OpenSecond(T0 + 4.25, _second(T0 + 4, 20, 20)).write(tmp_path / "open-second.json")
    assert [e.t for e in monitor.poll()] == [T0 + 3]
    now[0] = T0 + 5.1
    store.append(_second(T0 + 4, 50, 50))  # the whole second: breached (availability, floor)
    [evaluation] = monitor.poll()
    assert {v.name for v in evaluation.breached} == {"browse", "floor"}
    assert evaluation.sighted == {"browse": T0 + 4.3}  # never a throughput sighting
    assert evaluation.breach_seen_at("floor") == evaluation.seen_at == T0 + 5.1
    assert evaluation.first_seen_at == T0 + 4.3

    facts = _facts(
        [_second(T0 + i, 100, 0) for i in range(4)], (T0, T0 + 10), _fault(T0 + 4.1, None)
    )
    facts = RunFacts(
        **{**facts.__dict__, "evaluations": [*monitor.evaluations()], "slos": [SLO, FLOOR]}
    )
    summary = _summary(facts)
    [fault] = summary["faults"]
    assert fault["time_to_detect_s"] == 0.2  # seen at T0 + 4.3, injected at T0 + 4.1
    browse = next(s for s in summary["slos"] if s["name"] == "browse")
    assert browse["first_breach"]["seen_at"] == T0 + 4.3


def test_a_sighting_the_whole_second_does_not_confirm_is_forgotten(tmp_path: Path) -> None:
    now = [T0 + 4.3]
    store, monitor = _open_second_monitor(tmp_path, now)
    OpenSecond(T0 + 4.25, _second(T0 + 4, 20, 20)).write(tmp_path / "open-second.json")
    monitor.poll()
    now[0] = T0 + 5.1
    store.append(_second(T0 + 4, 4000, 20))  # the rest of the second answered: 99.5 %
    [evaluation] = monitor.poll()
    assert not evaluation.breached and evaluation.sighted == {}


def test_an_open_second_the_load_stopped_rewriting_is_not_looked_into(tmp_path: Path) -> None:
    now = [T0 + 5.3]  # written at T0 + 4.25 and never again: the load is stuck
    store, monitor = _open_second_monitor(tmp_path, now)
    OpenSecond(T0 + 4.25, _second(T0 + 4, 20, 20)).write(tmp_path / "open-second.json")
    assert [e.t for e in monitor.poll()] == [T0 + 3]
    now[0] = T0 + 5.4
    store.append(_second(T0 + 4, 50, 50))
    [evaluation] = monitor.poll()
    assert evaluation.breached and evaluation.sighted == {}


def test_secrets_never_reach_the_journal(tmp_path: Path) -> None:
    experiment_secrets = {
        "shop": {"token": "s3cr3t-inline", "from_env": {"type": "env", "key": "TOKEN"}}
    }
    resolved = {"shop": {"token": "s3cr3t-inline", "from_env": "resolved-env-secret"}}
    journal = {
        "experiment": {"secrets": experiment_secrets, "title": "t"},
        "run": [
            {"output": "called with s3cr3t-inline and resolved-env-secret", "status": "succeeded"}
        ],
    }
    clean = scrub(journal, secret_values(experiment_secrets, resolved))
    text = json.dumps(clean)
    assert "s3cr3t-inline" not in text and "resolved-env-secret" not in text
    assert clean["experiment"]["secrets"]["shop"]["token"] == REDACTED
    assert clean["experiment"]["secrets"]["shop"]["from_env"] == {"type": "env", "key": "TOKEN"}
    assert clean["run"][0]["output"] == f"called with {REDACTED} and {REDACTED}"


def test_the_journal_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    write_json_atomic(path, {"n": 1})
    write_json_atomic(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]  # no temporary file left


def _summary(facts: RunFacts) -> dict:  # type: ignore[type-arg]
    """The summary as summary.json holds it."""
    return summarize(facts).to_json()


def test_a_secret_cut_short_at_the_end_of_a_text_is_scrubbed_too() -> None:
    # A matched process's label is its command line cut to 120 characters: a secret on the
    # command line may be cut there, and its first part was left in journals and previews.
    token = "s3cr3t-0123456789abcdef"
    label = ("python -c pass " + "x" * 90 + " --token " + token)[:120]
    assert token not in label and label.endswith(token[:6])
    assert scrub({"label": label}, {token}) == {"label": label[:-6] + REDACTED}
    assert scrub({"label": "ends in s3c"}, {token}) == {"label": "ends in s3c"}  # < 4 chars
    assert scrub({"label": "whole " + token + " kept"}, {token}) == {"label": "whole *** kept"}


def test_a_secret_shorter_than_4_characters_is_not_treated_as_one() -> None:
    # README says so: "on" or "1" would otherwise be redacted all over the journal.
    assert secret_values({"s": {"flag": "on", "key": "abcd"}}) == {"abcd"}
