"""Network faults through any server that speaks the Toxiproxy HTTP API.

Ours (``python -m extensions.netproxy``, also what the demo shop runs with
``catalog_proxy: true``) or a real Toxiproxy: the activities only use the API. Which server
is used, first found wins: the ``api_url`` argument; the configuration key
``toxiproxy_url`` (or ``toxiproxy_host`` + ``toxiproxy_port``, the keys of
chaostoolkit-toxiproxy); the ``toxiproxy_url`` the run's embedded system publishes in its
``state.json``; ``http://127.0.0.1:8474``.

``proxy`` names one proxy or, with shell wildcards, several (``catalog-*``). Every fault
writes its undo record to the fault ledger before it acts (see ``extensions.faults``):
``remove_toxic`` and ``enable_proxy`` are the natural rollbacks, and ``inoculate recover``
reverts from the ledger alone. A fault whose server no longer listens is gone with it.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import requests
from chaoslib.types import Configuration

from extensions.faults import FaultError, Reverter, inject, revert_outstanding, settle
from extensions.ledger import LedgerRecord, ledger_from_configuration
from extensions.systems import SYSTEM_DIR_CONFIG_KEY

__all__ = [
    "add_latency",
    "add_toxic",
    "disable_proxy",
    "enable_proxy",
    "fail_http_requests",
    "proxies_state",
    "remove_toxic",
]

MODULE = "extensions.network"
DEFAULT_API_URL = "http://127.0.0.1:8474"
API_URL_CONFIG_KEY = "toxiproxy_url"
HTTP_TIMEOUT_S = 5.0


class NetworkFaultError(FaultError):
    """A network fault could not be injected or reverted (API unreachable, refused ...)."""


class _Unreachable(NetworkFaultError):
    """Nothing listens at the API URL (connection refused)."""


class _Refused(NetworkFaultError):
    """The API answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- the API client ---
# A dozen lines of requests rather than toxiproxy-python: that client keeps its server
# address in class attributes (global state shared by every caller) and drags in `future`.


def _call(api_url: str, method: str, path: str, body: Any = None) -> Any:
    url = api_url.rstrip("/") + path
    try:
        answer = requests.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
    except requests.ConnectionError as exc:
        raise _Unreachable(f"the Toxiproxy API at {api_url} is unreachable: {exc}") from exc
    except requests.RequestException as exc:
        raise NetworkFaultError(f"{method} {url} failed: {exc}") from exc
    if answer.status_code >= 400:
        try:
            message = answer.json().get("error", answer.text)
        except ValueError:
            message = answer.text
        raise _Refused(f"{method} {url}: {answer.status_code} {message}", answer.status_code)
    return answer.json() if answer.content else None


def api_url_from(configuration: Configuration, api_url: str | None = None) -> str:
    """The Toxiproxy API URL to use (see the module docstring for the order)."""
    configuration = configuration or {}
    if api_url:
        return api_url
    if configuration.get(API_URL_CONFIG_KEY):
        return str(configuration[API_URL_CONFIG_KEY])
    if configuration.get("toxiproxy_host"):
        port = configuration.get("toxiproxy_port") or 8474
        return f"http://{configuration['toxiproxy_host']}:{port}"
    state_dir = configuration.get(SYSTEM_DIR_CONFIG_KEY)
    if state_dir:
        try:
            published = json.loads((Path(state_dir) / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            published = {}
        if isinstance(published, dict) and published.get(API_URL_CONFIG_KEY):
            return str(published[API_URL_CONFIG_KEY])
    return DEFAULT_API_URL


def _resolve(api_url: str, proxy: str) -> list[dict[str, Any]]:
    """The proxies named by ``proxy`` (a name or a wildcard pattern)."""
    proxies: dict[str, dict[str, Any]] = _call(api_url, "GET", "/proxies")
    matched = [proxies[name] for name in sorted(proxies) if fnmatch.fnmatchcase(name, proxy)]
    if not matched:
        raise NetworkFaultError(
            f"no proxy matches {proxy!r} at {api_url}; known proxies: {sorted(proxies)}"
        )
    return matched


# --- activities ---


def add_toxic(
    proxy: str,
    toxic_type: str,
    attributes: dict[str, Any] | None = None,
    stream: str | None = None,
    toxicity: float = 1.0,
    name: str | None = None,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Add a toxic to every proxy matching ``proxy`` (a name or a pattern like ``catalog-*``).

    ``toxic_type`` and ``attributes`` as in Toxiproxy (``latency`` with ``{latency: 200}`` ms,
    ``bandwidth``, ``slow_close``, ``timeout``, ``reset_peer``, ``slicer``, ``limit_data``;
    and, on our proxy, ``http_status``, ``http_fail_first``, ``http_latency``). ``stream``
    is ``upstream`` (client to server) or ``downstream``; omitted, the server's default.
    ``name`` defaults to ``<type>_<stream>``. The undo (``remove_toxic``) deletes it.
    """
    url = api_url_from(configuration, api_url)
    targets = _resolve(url, proxy)
    body: dict[str, Any] = {
        "type": toxic_type,
        "toxicity": toxicity,
        "attributes": attributes or {},
    }
    if stream is not None:
        body["stream"] = stream
    toxic_name = name or f"{toxic_type}_{stream or _default_stream(toxic_type)}"
    body["name"] = toxic_name
    names = [t["name"] for t in targets]
    taken = [t["name"] for t in targets if any(x["name"] == toxic_name for x in t["toxics"])]
    if taken:
        raise NetworkFaultError(
            f"proxies {taken} already have a toxic named {toxic_name!r}; "
            "give this one another `name` (its undo would remove the other one)"
        )

    def act() -> list[dict[str, Any]]:
        return [_call(url, "POST", f"/proxies/{n}/toxics", body) for n in names]

    _, added = inject(
        configuration,
        MODULE,
        "toxic",
        {"proxy": proxy, "toxic": toxic_name},
        {"api_url": url, "proxies": names, "toxic": toxic_name},
        act,
        description=f"{toxic_type} toxic {toxic_name} on {', '.join(names)}",
    )
    return {"api_url": url, "proxies": names, "toxic": added[0] if added else body}


def add_latency(
    proxy: str,
    latency_ms: int,
    jitter_ms: int = 0,
    stream: str = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Delay the data of every proxy matching ``proxy`` by ``latency_ms`` ± ``jitter_ms``."""
    return add_toxic(
        proxy,
        "latency",
        {"latency": latency_ms, "jitter": jitter_ms},
        stream=stream,
        toxicity=toxicity,
        name=name,
        api_url=api_url,
        configuration=configuration,
    )


def fail_http_requests(
    proxy: str,
    status_code: int = 503,
    percentage: float = 100.0,
    path: str = "",
    method: str = "",
    name: str | None = None,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Answer ``percentage`` % of the HTTP requests matching ``path`` (a regular expression
    matched at the start of the target) and ``method`` with ``status_code``, from the proxy
    (our proxy's ``http_status`` toxic; the upstream never sees those requests)."""
    attributes = {
        "status_code": status_code,
        "percentage": percentage,
        "path": path,
        "method": method,
    }
    return add_toxic(
        proxy, "http_status", attributes, stream="upstream", name=name, api_url=api_url,
        configuration=configuration,
    )  # fmt: skip


def remove_toxic(
    proxy: str,
    name: str,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: remove the toxic ``name`` from the proxies matching ``proxy`` and settle
    the ledger records of the faults that added it (a toxic already gone is fine)."""
    url = api_url_from(configuration, api_url)
    outcomes = revert_outstanding(
        ledger_from_configuration(configuration),
        matches=lambda r: _is_toxic_record(r, proxy, name),
    )
    failed = [o.detail for o in outcomes if not o.reverted]
    if failed:
        raise NetworkFaultError("could not remove the toxic: " + "; ".join(failed))
    removed = []
    try:
        targets = [t["name"] for t in _resolve(url, proxy)]
    except _Unreachable:
        targets = []
    for target in targets:  # also a toxic this run did not record (added by hand)
        if _delete_toxic(url, target, name):
            removed.append(target)
    return {"api_url": url, "toxic": name, "reverted": [o.to_json() for o in outcomes],
            "removed_from": removed}  # fmt: skip


def disable_proxy(
    proxy: str,
    duration_s: float | None = None,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Take the proxies matching ``proxy`` down (Toxiproxy's ``down``: stop listening and
    close their connections). With ``duration_s`` the action waits that long and brings them
    back itself (also when interrupted); otherwise ``enable_proxy`` is the rollback."""
    if duration_s is not None and duration_s <= 0:
        raise NetworkFaultError(f"duration_s must be a positive number, got {duration_s}")
    url = api_url_from(configuration, api_url)
    names = [t["name"] for t in _resolve(url, proxy)]
    record, _ = inject(
        configuration,
        MODULE,
        "down",
        {"proxy": proxy},
        {"api_url": url, "proxies": names},
        act=lambda: [_call(url, "POST", f"/proxies/{n}", {"enabled": False}) for n in names],
        description=f"proxy down: {', '.join(names)}",
    )
    if duration_s is not None:
        try:
            time.sleep(duration_s)
        finally:
            settle(ledger_from_configuration(configuration), record, _revert_down(record))
    return {"api_url": url, "proxies": names, "duration_s": duration_s}


def enable_proxy(
    proxy: str,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: bring the proxies matching ``proxy`` back up and settle their ``down`` records."""
    url = api_url_from(configuration, api_url)
    outcomes = revert_outstanding(
        ledger_from_configuration(configuration),
        matches=lambda r: r.module == MODULE and r.fault == "down" and _same_proxy(r, proxy),
    )
    failed = [o.detail for o in outcomes if not o.reverted]
    if failed:
        raise NetworkFaultError("could not enable: " + "; ".join(failed))
    names = [t["name"] for t in _resolve(url, proxy)]
    for target in names:
        _call(url, "POST", f"/proxies/{target}", {"enabled": True})
    return {"api_url": url, "proxies": names, "reverted": [o.to_json() for o in outcomes]}


def proxies_state(
    proxy: str = "*",
    api_url: str | None = None,
    configuration: Configuration = None,
) -> list[dict[str, Any]]:
    """Probe: each matching proxy as the API shows it (listen, upstream, enabled, toxics)."""
    return _resolve(api_url_from(configuration, api_url), proxy)


# --- reverters: undo from the ledger record alone ---


def _delete_toxic(api_url: str, proxy: str, toxic: str) -> bool:
    try:
        _call(api_url, "DELETE", f"/proxies/{proxy}/toxics/{toxic}")
    except _Refused as exc:
        if exc.status == 404:  # the proxy or the toxic is gone already
            return False
        raise
    return True


def _revert_toxic(record: LedgerRecord) -> str:
    url, toxic = str(record.undo["api_url"]), str(record.undo["toxic"])
    try:
        removed = [p for p in record.undo["proxies"] if _delete_toxic(url, str(p), toxic)]
    except _Unreachable:
        return f"nothing listens at {url} any more: toxic {toxic} is gone with its proxies"
    return f"removed toxic {toxic} from {removed}" if removed else f"toxic {toxic} already gone"


def _revert_down(record: LedgerRecord) -> str:
    url = str(record.undo["api_url"])
    enabled = []
    try:
        for proxy in record.undo["proxies"]:
            try:
                _call(url, "POST", f"/proxies/{proxy}", {"enabled": True})
                enabled.append(proxy)
            except _Refused as exc:
                if exc.status != 404:
                    raise
    except _Unreachable:
        return f"nothing listens at {url} any more: its proxies are gone"
    return f"enabled {enabled}"


FAULTS: Mapping[str, Reverter] = MappingProxyType({"toxic": _revert_toxic, "down": _revert_down})


# --- helpers ---


def _default_stream(toxic_type: str) -> str:
    # The server's default, needed here to name the toxic before it exists (the undo record
    # is written first): Toxiproxy's toxics default to downstream, our http_* ones to upstream.
    return "upstream" if toxic_type.startswith("http_") else "downstream"


def _same_proxy(record: LedgerRecord, proxy: str) -> bool:
    recorded = [str(p) for p in record.undo.get("proxies", [])]
    return record.target.get("proxy") == proxy or any(
        fnmatch.fnmatchcase(p, proxy) for p in recorded
    )


def _is_toxic_record(record: LedgerRecord, proxy: str, name: str) -> bool:
    return (
        record.module == MODULE
        and record.fault == "toxic"
        and record.undo.get("toxic") == name
        and _same_proxy(record, proxy)
    )
