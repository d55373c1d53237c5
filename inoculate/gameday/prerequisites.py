"""The prerequisites checklist: HTTP checks and Prometheus queries, run before the first
experiment (manual confirmations are asked through :class:`~inoculate.gameday.control.
GamedayControl`). A check that cannot run (refused connection, timeout, query error, no
series) fails, with the reason in its detail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from inoculate.gameday.spec import HttpCheck, Prerequisite, PrometheusCheck
from inoculate.model.status import SliDataStatus
from inoculate.steady_state.prometheus import PrometheusClient

__all__ = ["CheckResult", "run_check"]


@dataclass(frozen=True)
class CheckResult:
    """One automatic prerequisite's outcome."""

    name: str
    check: str
    ok: bool
    detail: str


def run_check(prerequisite: Prerequisite) -> CheckResult:
    """Run an ``http`` or ``prometheus`` prerequisite now."""
    if prerequisite.http is not None:
        ok, detail = _http(prerequisite.http)
    elif prerequisite.prometheus is not None:
        ok, detail = _prometheus(prerequisite.prometheus)
    else:
        raise ValueError(f"{prerequisite.name} is a manual prerequisite")
    return CheckResult(prerequisite.name, prerequisite.check, ok, detail)


def _http(check: HttpCheck) -> tuple[bool, str]:
    try:
        response = requests.get(check.url, timeout=check.timeout_s, allow_redirects=False)
    except requests.Timeout:
        return False, f"GET {check.url}: no answer within {check.timeout_s:g} s"
    except requests.RequestException as exc:
        return False, f"GET {check.url}: {_why(exc)}"
    status = response.status_code
    response.close()
    if status != check.expect_status:
        return False, f"GET {check.url} answered {status}, expected {check.expect_status}"
    return True, f"GET {check.url} answered {status}"


def _prometheus(check: PrometheusCheck) -> tuple[bool, str]:
    with PrometheusClient(check) as client:
        result = client.query(check.query, time.time())
    if result.status is not SliDataStatus.OK:
        why = f": {result.error}" if result.error else ""
        return False, f"{check.query}: {result.status}{why}"[:300]
    if len(result.samples) != 1:
        return False, f"{check.query}: {len(result.samples)} series, expected one value"
    value = result.only_value()
    expected = f"{check.expect.op} {check.expect.value:g}"
    if not check.expect.holds(value):
        return False, f"{check.query} = {value:g}, expected {expected}"
    return True, f"{check.query} = {value:g} ({expected})"


def _why(exc: BaseException) -> str:
    """The operating system's reason under a requests error ("Connection refused"), else the
    error's first line."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return f"cannot connect: {current.strerror}"
        nested = (
            current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        )
        reason = getattr(current, "reason", None)
        current = (
            nested
            or (reason if isinstance(reason, BaseException) else None)
            or (current.__cause__ or current.__context__)
        )
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
