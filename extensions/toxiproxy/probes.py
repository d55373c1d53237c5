"""Toxiproxy probes: the proxies as the API shows them."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.toxiproxy.client import api_url_from, resolve_proxies

__all__ = ["proxies_state"]


def proxies_state(
    proxy: str = "*",
    api_url: str | None = None,
    configuration: Configuration = None,
) -> list[dict[str, Any]]:
    """Probe: each matching proxy as the API shows it (listen, upstream, enabled, toxics)."""
    return resolve_proxies(api_url_from(configuration, api_url), proxy)
