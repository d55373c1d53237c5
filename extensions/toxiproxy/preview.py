"""What each Toxiproxy activity would hit right now (``inoculate run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.toxiproxy.client import NetworkFaultError, api_url_from, resolve_proxies
from inoculate.model.targets import Reach

__all__ = ["PREVIEWS", "REACH"]


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


def _reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    """Every proxy the name or pattern matches now; the percentage is the share of the
    traffic through them that the fault touches (``toxicity``, or ``percentage`` of the
    HTTP requests)."""
    url = api_url_from(dict(configuration), arguments.get("api_url"))
    share = arguments.get("percentage", 100.0 * float(arguments.get("toxicity", 1.0) or 0))
    try:
        matched: int | None = len(resolve_proxies(url, str(arguments.get("proxy", "*"))))
    except NetworkFaultError:
        matched = None
    seen = "cannot be listed now" if matched is None else f"{matched} match now"
    why = f"every proxy matching {arguments.get('proxy')!r} ({seen}), {share:g} % of its traffic"
    return Reach("toxiproxy", matched, float(share), why)


# Fault activity → the most it could hit now (a canary's blast radius).
REACH: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]] = MappingProxyType(
    dict.fromkeys(("add_toxic", "add_latency", "fail_http_requests", "disable_proxy"), _reach)
)
