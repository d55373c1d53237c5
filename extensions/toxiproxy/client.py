"""The Toxiproxy HTTP API, as the activities and reverters use it.

A dozen lines of requests rather than toxiproxy-python: that client keeps its server address
in class attributes (global state shared by every caller) and drags in ``future``.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import requests
from chaoslib.types import Configuration

from inoculate.model.errors import FaultError
from inoculate.model.layout import SYSTEM_DIR_CONFIG_KEY

__all__ = [
    "API_URL_CONFIG_KEY",
    "DEFAULT_API_URL",
    "NetworkFaultError",
    "Refused",
    "Unreachable",
    "api_url_from",
    "call",
    "delete_toxic",
    "resolve_proxies",
]

DEFAULT_API_URL = "http://127.0.0.1:8474"
API_URL_CONFIG_KEY = "toxiproxy_url"
HTTP_TIMEOUT_S = 5.0


class NetworkFaultError(FaultError):
    """A network fault could not be injected or reverted (API unreachable, refused ...)."""


class Unreachable(NetworkFaultError):
    """Nothing listens at the API URL (connection refused)."""


class Refused(NetworkFaultError):
    """The API answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def call(api_url: str, method: str, path: str, body: Any = None) -> Any:
    """Call the API; translate every failure into a :class:`NetworkFaultError`."""
    url = api_url.rstrip("/") + path
    try:
        answer = requests.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
    except requests.ConnectionError as exc:
        raise Unreachable(f"the Toxiproxy API at {api_url} is unreachable: {exc}") from exc
    except requests.RequestException as exc:
        raise NetworkFaultError(f"{method} {url} failed: {exc}") from exc
    if answer.status_code >= 400:
        try:
            message = answer.json().get("error", answer.text)
        except ValueError:
            message = answer.text
        raise Refused(f"{method} {url}: {answer.status_code} {message}", answer.status_code)
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


def resolve_proxies(api_url: str, proxy: str) -> list[dict[str, Any]]:
    """The proxies named by ``proxy`` (a name or a wildcard pattern)."""
    proxies: dict[str, dict[str, Any]] = call(api_url, "GET", "/proxies")
    matched = [proxies[name] for name in sorted(proxies) if fnmatch.fnmatchcase(name, proxy)]
    if not matched:
        raise NetworkFaultError(
            f"no proxy matches {proxy!r} at {api_url}; known proxies: {sorted(proxies)}"
        )
    return matched


def delete_toxic(api_url: str, proxy: str, toxic: str) -> bool:
    """Delete a toxic; return False when it (or its proxy) was already gone."""
    try:
        call(api_url, "DELETE", f"/proxies/{proxy}/toxics/{toxic}")
    except Refused as exc:
        if exc.status == 404:  # the proxy or the toxic is gone already
            return False
        raise
    return True
