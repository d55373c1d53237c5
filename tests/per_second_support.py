"""Whether a run's ``sli-seconds.jsonl`` stands in exactly for decoding its ``sli.jsonl``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inoculate.reports.model import report_series_parameters
from inoculate.reports.per_second import load_precomputed
from inoculate.reports.run_data import load_run
from inoculate.reports.series import SliSeries, load_series

__all__ = ["assert_same_series", "assert_seconds_stand_in"]


def assert_seconds_stand_in(run_dir: Path) -> None:
    """The report's series from ``sli-seconds.jsonl`` equals the one decoded from
    ``sli.jsonl``, for the report's own percentiles, thresholds and selections."""
    percentiles, thresholds, latency_of = report_series_parameters(load_run(run_dir))
    samples = run_dir / "sli.jsonl"
    precomputed = load_precomputed(samples, percentiles, thresholds, latency_of)
    assert precomputed is not None, f"{run_dir}: sli-seconds.jsonl cannot stand in"
    assert_same_series(precomputed, load_series(samples, percentiles, thresholds, latency_of))


def assert_same_series(a: SliSeries, b: SliSeries) -> None:
    """Every array of two series equal (NaN equal to NaN)."""
    assert np.array_equal(a.t, b.t) and a.latency_of == b.latency_of
    assert a.endpoints.keys() == b.endpoints.keys()
    for name in [*a.endpoints, None]:
        ea, eb = a.select(name), b.select(name)
        assert ea is not None and eb is not None
        for field in ("started", "completed", "failures", "stalled", "late", "late_failures",
                      "recorded"):  # fmt: skip
            x, y = getattr(ea, field), getattr(eb, field)
            assert (x is None) == (y is None), (name, field)
            if x is not None:
                assert np.array_equal(x, y, equal_nan=True), (name, field)
        for mine, theirs in ((ea.percentiles, eb.percentiles), (ea.slow, eb.slow)):
            assert mine.keys() == theirs.keys(), name
            for key in mine:
                assert np.array_equal(mine[key], theirs[key], equal_nan=True), (name, key)
