"""Network faults through any Toxiproxy-API server: ``module: inoculate.extensions.toxiproxy``.

Actions: ``add_toxic``, ``add_latency``, ``fail_http_requests``, ``disable_proxy``;
rollbacks ``remove_toxic``, ``enable_proxy``. Probe: ``proxies_state``. See :mod:`.actions`.
"""

from inoculate.extensions.toxiproxy.actions import (
    add_latency,
    add_toxic,
    disable_proxy,
    enable_proxy,
    fail_http_requests,
    remove_toxic,
)
from inoculate.extensions.toxiproxy.probes import proxies_state

__all__ = [
    "add_latency",
    "add_toxic",
    "disable_proxy",
    "enable_proxy",
    "fail_http_requests",
    "proxies_state",
    "remove_toxic",
]
