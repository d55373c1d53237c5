"""What an SLO measured from Prometheus declares: the server, and the SLI's selectors.

Only the declarations (pydantic models), so that the SLO models of
:mod:`inoculate.steady_state.slo` can carry a ``prometheus`` SLI; the client, the queries and
the maths are :mod:`inoculate.steady_state.prometheus`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_SELECTOR_CHARS",
    "AvailabilitySli",
    "LatencySli",
    "PrometheusSli",
    "PrometheusSource",
    "ThroughputSli",
]

MAX_SELECTOR_CHARS = 2000
_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
_JOB_NAME = r"^[A-Za-z0-9_.:-]+$"


# --------------------------------------------------------------------------- specs


class PrometheusSource(BaseModel):
    """Where the Prometheus server is and how long one query may take."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        max_length=500,
        description="Base URL of the Prometheus server, e.g. http://127.0.0.1:9090.",
    )
    timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="Seconds that connecting, and then each wait for the answer, may take "
        "before the query is a timeout.",
    )


class _SliBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    jobs: tuple[Annotated[str, Field(pattern=_JOB_NAME, max_length=200)], ...] = Field(
        default=(),
        max_length=20,
        description="Scrape jobs the SLI depends on: any of their targets with `up == 0` at "
        "the evaluation time, or a job without targets, is missing data.",
    )
    missing_data: Literal["breach", "skip"] = Field(
        default="breach",
        description="What a second without data (no series, a failed scrape, a query error, "
        "a timeout, the server gone) is: a breach (the default: never fly blind), or a "
        "second not judged. The burn-rate guard trips on missing data either way.",
    )


def _selector_field(description: str, default: Any = ...) -> Any:
    return Field(default, min_length=1, max_length=MAX_SELECTOR_CHARS, description=description)


class AvailabilitySli(_SliBase):
    """Availability from counters: good/total or bad/total."""

    sli: Literal["availability"] = "availability"
    good: str | None = _selector_field("Selector of the good requests' counter(s).", None)
    bad: str | None = _selector_field("Selector of the bad requests' counter(s).", None)
    total: str = _selector_field("Selector of every valid request's counter(s).")

    @model_validator(mode="after")
    def _good_or_bad(self) -> AvailabilitySli:
        if (self.good is None) == (self.bad is None):
            raise ValueError("expected exactly one of `good` and `bad` beside `total`")
        return self


class LatencySli(_SliBase):
    """Latency from a histogram: the share of requests under the SLO's threshold, or the
    percentile itself as ``histogram_quantile`` estimates it."""

    sli: Literal["latency"] = "latency"
    read_as: Literal["share", "quantile"] = Field(
        default="share",
        description="share: the % of requests at or under the threshold (exact at a bucket "
        "bound), which must reach the percentile; quantile: histogram_quantile's estimate of "
        "the percentile (interpolated inside a bucket), which must not exceed the threshold.",
    )
    histogram: str = Field(
        pattern=_METRIC_NAME,
        max_length=200,
        description="Base name of the histogram (its series are <name>_bucket, _count, _sum).",
    )
    selector: str = Field(
        default="",
        pattern=r"^(\{.*\})?$",
        max_length=MAX_SELECTOR_CHARS,
        description='Label matchers in braces, e.g. {job="shop-gateway",route="/products"}; '
        "empty means every series of the histogram.",
    )


class ThroughputSli(_SliBase):
    """Throughput from a counter's rate."""

    sli: Literal["throughput"] = "throughput"
    counter: str = _selector_field("Selector of the counted requests' counter(s).")


PrometheusSli = Annotated[AvailabilitySli | LatencySli | ThroughputSli, Field(discriminator="sli")]
