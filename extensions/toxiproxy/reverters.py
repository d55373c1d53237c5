"""Undoing Toxiproxy faults from their ledger record alone (rollbacks and ``inoculate recover``).

Registered as the ``toxiproxy`` fault family (entry-point group ``inoculate.faults``). A
fault whose server no longer listens is gone with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.toxiproxy.client import Refused, Unreachable, call, delete_toxic
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter

__all__ = ["FAMILY", "REVERTERS", "TARGET_KEYS", "VERIFIERS", "revert_down", "revert_toxic"]

FAMILY = "toxiproxy"


def revert_toxic(record: LedgerRecord) -> str:
    """Delete the recorded toxic from every recorded proxy."""
    url, toxic = str(record.undo["api_url"]), str(record.undo["toxic"])
    try:
        removed = [p for p in record.undo["proxies"] if delete_toxic(url, str(p), toxic)]
    except Unreachable:
        return f"nothing listens at {url} any more: toxic {toxic} is gone with its proxies"
    return f"removed toxic {toxic} from {removed}" if removed else f"toxic {toxic} already gone"


def revert_down(record: LedgerRecord) -> str:
    """Enable every recorded proxy again."""
    url = str(record.undo["api_url"])
    enabled = []
    try:
        for proxy in record.undo["proxies"]:
            try:
                call(url, "POST", f"/proxies/{proxy}", {"enabled": True})
                enabled.append(proxy)
            except Refused as exc:
                if exc.status != 404:
                    raise
    except Unreachable:
        return f"nothing listens at {url} any more: its proxies are gone"
    return f"enabled {enabled}"


REVERTERS: Mapping[str, Reverter] = MappingProxyType({"toxic": revert_toxic, "down": revert_down})


def _toxics(record: LedgerRecord) -> set[str]:
    url, toxic = record.undo.get("api_url"), record.undo.get("toxic")
    return {f"toxic:{url}:{proxy}:{toxic}" for proxy in record.undo.get("proxies", [])}


def _proxies(record: LedgerRecord) -> set[str]:
    url = record.undo.get("api_url")
    return {f"proxy:{url}:{proxy}" for proxy in record.undo.get("proxies", [])}


# A proxy two runs took down comes back when the last one reverts (inoculate.faults.kinds).
TARGET_KEYS: Mapping[str, Callable[[LedgerRecord], set[str]]] = MappingProxyType(
    {"toxic": _toxics, "down": _proxies}
)


def _proxies_now(record: LedgerRecord) -> dict[str, dict[str, Any]] | None:
    try:
        proxies: dict[str, dict[str, Any]] = call(str(record.undo["api_url"]), "GET", "/proxies")
    except Unreachable:
        return None
    return proxies


def _toxic_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    proxies = _proxies_now(record)
    if proxies is None:
        return None, "the Toxiproxy server is gone (and its toxics with it)"
    toxic = record.undo.get("toxic")
    still = [
        name
        for name in record.undo.get("proxies", [])
        if any(t.get("name") == toxic for t in proxies.get(name, {}).get("toxics", []))
    ]
    return (False, f"toxic {toxic} still on {still}") if still else (True, f"no {toxic}")


def _down_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    proxies = _proxies_now(record)
    if proxies is None:
        return None, "the Toxiproxy server is gone"
    down = [n for n in record.undo.get("proxies", []) if n in proxies and not proxies[n]["enabled"]]
    return (False, f"still down: {down}") if down else (True, "every proxy enabled")


VERIFIERS: Mapping[str, Callable[[LedgerRecord], tuple[bool | None, str]]] = MappingProxyType(
    {"toxic": _toxic_restored, "down": _down_restored}
)
