"""Plain text says things as people write them: no regex escapes, no exponents."""

from __future__ import annotations

import pytest

from inoculate.model.summary import value_text
from inoculate.model.targets import readable_pattern, target_words


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
