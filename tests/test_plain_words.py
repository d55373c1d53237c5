"""Plain text says things as people write them: no regex escapes, no exponents."""

from __future__ import annotations

import pytest

from inoculate.cli.run import _fault_times as console_times
from inoculate.model.summary import FaultSummary, value_text
from inoculate.model.targets import readable_pattern, target_words
from inoculate.reports.markdown import _times as markdown_times
from inoculate.reports.runbook import _times as runbook_times


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (2001.919, "ms", "2002ms"),  # {:.3g} printed 2e+03ms
        (12345.6, "ms", "12346ms"),
        (98.87745, "%", "98.88%"),
        (99.95, "%", "99.95%"),
        (9.2, "req/s", "9.2req/s"),
        (40.0, "req/s", "40req/s"),
        (0.00123, "", "0.00123"),
        (0.0, "%", "0%"),
        (-3.5, "", "-3.5"),
    ],
)
def test_values_have_four_significant_digits_and_no_exponent(
    value: float, unit: str, text: str
) -> None:
    assert value_text(value, unit) == text


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"catalog\.py --port \d+", "catalog.py --port …"),
        (r"^nginx: master process .*/tmp/x\.conf$", "nginx: master process …/tmp/x.conf"),
        (r"redis-server \*:6379", "redis-server *:6379"),
        (r"python3? -m foo", "python3 -m foo"),
        (r"\bworker-[0-9]+\b", "worker-…"),
        (r"^$", "^$"),  # nothing readable left: the pattern itself
    ],
)
def test_patterns_read_without_regex_syntax(pattern: str, text: str) -> None:
    assert readable_pattern(pattern) == text


def test_a_target_is_named_the_way_people_name_it() -> None:
    assert target_words({"service": "catalog"}) == "catalog"
    assert target_words({"container": "shop-db", "network": "x"}) == "shop-db"
    assert target_words({"pattern": r"nginx: worker .*"}) == "processes matching “nginx: worker …”"
    assert target_words({"proxy": "catalog", "toxic": "latency"}) == "proxy=catalog, toxic=latency"
    assert target_words({}) is None


def test_chaoslib_lines_that_contradict_the_verdict_are_reworded() -> None:
    import logging

    from inoculate.cli.output import ChaoslibWording

    def said(message: str) -> str:
        record = logging.LogRecord("chaostoolkit", logging.INFO, __file__, 1, message, (), None)
        assert ChaoslibWording().filter(record)
        return record.getMessage()

    ended = said("Experiment ended with status: completed")
    assert "completed" in ended and "inoculate's verdict follows" in ended
    assert not ended.startswith("Experiment ended")
    assert said("Received a termination signal (Ctrl-C)...") == (
        "the run was interrupted; its rollbacks follow"
    )
    assert said("Action: kill-catalog") == "Action: kill-catalog"


def _fault(**fields: object) -> FaultSummary:
    base: dict[str, object] = {"id": "f1", "kind": "process:kill", "injected_at": 100.0}
    return FaultSummary.model_validate({**base, **fields})


@pytest.mark.parametrize("render", [markdown_times, runbook_times, console_times])
def test_a_recovery_nobody_timed_is_never_called_a_failure_to_recover(render) -> None:  # type: ignore[no-untyped-def]
    untimed = _fault(detected=True, time_to_detect_s=1.0, recovered=None)
    never = _fault(detected=True, time_to_detect_s=1.0, recovered=False)
    unseen = _fault(detected=False)
    assert "recovery not measured" in render(untimed, True)
    assert "not back" in render(never, True) and "not measured" not in render(never, True)
    assert "no SLO breach" in render(unseen, True)
    # With no SLO declared, nothing could have seen the fault: not "no breach seen".
    assert render(unseen, False) == "no SLO declared, so nothing could detect it"
