"""Network faults through any server that speaks the Toxiproxy HTTP API.

Ours (``python -m inoculate.toxiproxy_server``, also what the demo shop runs with
``catalog_proxy: true``) or a real Toxiproxy: the activities only use the API. Which server
is used, first found wins: the ``api_url`` argument; the configuration key
``toxiproxy_url`` (or ``toxiproxy_host`` + ``toxiproxy_port``, the keys of
chaostoolkit-toxiproxy); the ``toxiproxy_url`` the run's embedded system publishes in its
``state.json``; ``http://127.0.0.1:8474``.

``proxy`` names one proxy or, with shell wildcards, several (``catalog-*``). Every fault
writes its undo record to the fault ledger before it acts (see ``inoculate.faults.protocol``):
``remove_toxic`` and ``enable_proxy`` are the natural rollbacks, and ``inoculate recover``
reverts from the ledger alone. A fault whose server no longer listens is gone with it.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.toxiproxy.client import (
    NetworkFaultError,
    Unreachable,
    api_url_from,
    call,
    delete_toxic,
    resolve_proxies,
)
from inoculate.extensions.toxiproxy.reverters import FAMILY, revert_down
from inoculate.faults.ledger import LedgerRecord, ledger_from_configuration
from inoculate.faults.protocol import held_elsewhere, inject, revert_matching, settle

__all__ = [
    "add_latency",
    "add_toxic",
    "disable_proxy",
    "enable_proxy",
    "fail_http_requests",
    "remove_toxic",
]


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
    targets = resolve_proxies(url, proxy)
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
        return [call(url, "POST", f"/proxies/{n}/toxics", body) for n in names]

    _, added = inject(
        configuration,
        FAMILY,
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
    outcomes = revert_matching(configuration, lambda r: _is_toxic_record(r, proxy, name))
    removed, left = [], []
    try:
        targets = [t["name"] for t in resolve_proxies(url, proxy)]
    except Unreachable:
        targets = []
    for target in targets:  # also a toxic this run did not record (added by hand) ...
        holder = held_elsewhere(configuration, f"{FAMILY}:toxic", f"toxic:{url}:{target}:{name}")
        if holder is not None:  # ... but never one another live run added
            left.append({"proxy": target, "held_by_run": holder.run_id})
        elif delete_toxic(url, target, name):
            removed.append(target)
    return {"api_url": url, "toxic": name, "reverted": [o.to_json() for o in outcomes],
            "removed_from": removed, "left_to_other_runs": left}  # fmt: skip


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
    names = [t["name"] for t in resolve_proxies(url, proxy)]
    record, _ = inject(
        configuration,
        FAMILY,
        "down",
        {"proxy": proxy},
        {"api_url": url, "proxies": names},
        act=lambda: [call(url, "POST", f"/proxies/{n}", {"enabled": False}) for n in names],
        description=f"proxy down: {', '.join(names)}",
    )
    if duration_s is not None:
        try:
            time.sleep(duration_s)
        finally:
            settle(ledger_from_configuration(configuration), record, revert_down(record))
    return {"api_url": url, "proxies": names, "duration_s": duration_s}


def enable_proxy(
    proxy: str,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: bring the proxies matching ``proxy`` back up and settle their ``down`` records."""
    url = api_url_from(configuration, api_url)
    outcomes = revert_matching(
        configuration,
        lambda r: r.family == FAMILY and r.fault == "down" and _same_proxy(r, proxy),
    )
    names, left = [], []
    for target in [t["name"] for t in resolve_proxies(url, proxy)]:
        holder = held_elsewhere(configuration, f"{FAMILY}:down", f"proxy:{url}:{target}")
        if holder is not None:  # another live run took it down too: its rollback enables it
            left.append({"proxy": target, "held_by_run": holder.run_id})
            continue
        call(url, "POST", f"/proxies/{target}", {"enabled": True})
        names.append(target)
    return {"api_url": url, "proxies": names, "reverted": [o.to_json() for o in outcomes],
            "left_to_other_runs": left}  # fmt: skip


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
        record.family == FAMILY
        and record.fault == "toxic"
        and record.undo.get("toxic") == name
        and _same_proxy(record, proxy)
    )
