"""When a canary may run: allowed windows (days and hours in a time zone) and freeze dates.

A policy lists the windows in which chaos is allowed — ``{days: [mon, tue], hours:
"10:00-16:00"}`` in the policy's IANA time zone — and the dates on which it never is
(``2026-12-24`` or a range ``2026-12-20..2027-01-04``, both ends included, in the same zone).
A run must *start* in a window, on no freeze date, and must be able to *end* in it too: the
windows have to hold for the policy's maximum duration from now, so a run never spills out
of office hours or into a freeze (``00:00-24:00`` windows on consecutive days let it cross
midnight).
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DAYS", "AllowedWindow", "Windows", "why_not_now"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AllowedWindow(BaseModel):
    """Days of the week and one span of hours on each of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: list[str] = Field(
        default_factory=lambda: list(DAYS), description="mon, tue, wed, thu, fri, sat, sun"
    )
    hours: str = Field(
        default="00:00-24:00", description='a span "HH:MM-HH:MM" on the same day, e.g. 10:00-16:00'
    )

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        if not days:
            raise ValueError(f"expected at least one of {', '.join(DAYS)}")
        for day in days:
            if day not in DAYS:
                raise ValueError(f"expected days among {', '.join(DAYS)}, got {day!r}")
        return days

    @field_validator("hours")
    @classmethod
    def _a_span(cls, hours: str) -> str:
        match = _HOURS.match(hours)
        if match is None:
            raise ValueError(f'expected "HH:MM-HH:MM" such as "10:00-16:00", got {hours!r}')
        start, end = _minutes(match.group(1, 2)), _minutes(match.group(3, 4))
        if end > 24 * 60 or start >= end:
            raise ValueError(
                f"expected the start before the end on the same day (00:00-24:00 at most), "
                f"got {hours!r}"
            )
        return hours

    def span(self) -> tuple[int, int]:
        """The window's start and end in minutes after midnight."""
        match = _HOURS.match(self.hours)
        assert match is not None  # validated
        return _minutes(match.group(1, 2)), _minutes(match.group(3, 4))


class Windows(BaseModel):
    """The allowed windows and freeze dates of a policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(description="IANA time zone of the windows, e.g. Europe/Paris or UTC")
    allowed: list[AllowedWindow] = Field(min_length=1, description="when chaos may run")
    freeze: list[str] = Field(
        default_factory=list,
        description="dates when it never runs: YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD",
    )

    @field_validator("timezone")
    @classmethod
    def _a_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA time zone such as Europe/Paris or UTC, got {zone!r}"
            ) from None
        return zone

    @field_validator("freeze")
    @classmethod
    def _dates(cls, freeze: list[str]) -> list[str]:
        for entry in freeze:
            _freeze_range(entry)
        return freeze

    def freeze_ranges(self) -> list[tuple[dt.date, dt.date]]:
        """Every freeze as (first day, last day), both included."""
        return [_freeze_range(entry) for entry in self.freeze]


def why_not_now(windows: Windows, now: dt.datetime, duration_s: float) -> str | None:
    """Why a run of up to ``duration_s`` seconds may not start at ``now`` (timezone-aware),
    or None when it lies inside the allowed windows from start to end and touches no
    freeze date."""
    zone = ZoneInfo(windows.timezone)
    start = now.astimezone(zone)
    end = (now + dt.timedelta(seconds=duration_s)).astimezone(zone)
    for first, last in windows.freeze_ranges():
        if start.date() <= last and end.date() >= first:
            span = str(first) if first == last else f"{first}..{last}"
            return f"freeze {span} ({windows.timezone}): no chaos on those dates"
    if _covered(windows.allowed, start, end):
        return None
    allowed = "; ".join(f"{','.join(w.days)} {w.hours}" for w in windows.allowed)
    return (
        f"outside the allowed windows ({allowed}, {windows.timezone}): a run of up to "
        f"{duration_s:g} s from {start:%a %Y-%m-%d %H:%M} would end at {end:%a %H:%M}"
    )


def _covered(allowed: list[AllowedWindow], start: dt.datetime, end: dt.datetime) -> bool:
    """Whether every moment from ``start`` to ``end`` (wall clock, one zone) lies in a window:
    each day's part of the run in one window of that day (``00:00-24:00`` windows on
    consecutive days let a run cross midnight)."""
    day = start.date()
    while True:
        midnight = dt.datetime.combine(day, dt.time(0), start.tzinfo)
        begins = max(0.0, (start - midnight).total_seconds() / 60)
        ends = min(1440.0, (end - midnight).total_seconds() / 60)
        name = DAYS[day.weekday()]
        if not any(
            name in window.days and window.span()[0] <= begins and ends <= window.span()[1]
            for window in allowed
        ):
            return False
        if (end - midnight).total_seconds() <= 86400:
            return True
        day += dt.timedelta(days=1)


def _minutes(parts: tuple[str, str]) -> int:
    return int(parts[0]) * 60 + int(parts[1])


def _freeze_range(entry: str) -> tuple[dt.date, dt.date]:
    first_text, _, last_text = entry.partition("..")
    last_text = last_text or first_text
    try:
        if not (_DATE.match(first_text) and _DATE.match(last_text)):
            raise ValueError
        first, last = dt.date.fromisoformat(first_text), dt.date.fromisoformat(last_text)
    except ValueError:
        raise ValueError(
            f"expected a date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD, got {entry!r}"
        ) from None
    if last < first:
        raise ValueError(f"expected the range's first date before its last, got {entry!r}")
    return first, last
