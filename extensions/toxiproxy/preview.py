"""What each Toxiproxy activity would hit right now (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.toxiproxy.client import NetworkFaultError, api_url_from, resolve_proxies

__all__ = ["PREVIEWS"]


def _proxies(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    url = api_url_from(dict(configuration), arguments.get("api_url"))
    try:
        found = resolve_proxies(url, str(arguments.get("proxy", "*")))
    except NetworkFaultError as exc:
        return [f"cannot tell now: {exc}"]
    return [f"proxy {p['name']} ({p['listen']} → {p['upstream']}) at {url}" for p in found]


PREVIEWS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]] = (
    MappingProxyType(
        {
            name: _proxies
            for name in (
                "add_toxic",
                "add_latency",
                "fail_http_requests",
                "disable_proxy",
                "remove_toxic",
                "enable_proxy",
            )
        }
    )
)
