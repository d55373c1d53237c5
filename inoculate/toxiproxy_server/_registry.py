"""Every toxic type the server knows, by name. Adding a toxic: write its class, list it here."""

from __future__ import annotations

from collections.abc import Mapping

from inoculate.toxiproxy_server._http_toxics import (
    HttpFailFirstToxic,
    HttpLatencyToxic,
    HttpStatusToxic,
)
from inoculate.toxiproxy_server._toxic import Toxic, registry
from inoculate.toxiproxy_server._toxics import (
    BandwidthToxic,
    LatencyToxic,
    LimitDataToxic,
    ResetPeerToxic,
    SlicerToxic,
    SlowCloseToxic,
    TimeoutToxic,
)

__all__ = ["TOXIC_TYPES"]

TOXIC_TYPES: Mapping[str, type[Toxic]] = registry(
    [
        LatencyToxic,
        BandwidthToxic,
        SlowCloseToxic,
        TimeoutToxic,
        ResetPeerToxic,
        SlicerToxic,
        LimitDataToxic,
        HttpStatusToxic,
        HttpFailFirstToxic,
        HttpLatencyToxic,
    ]
)
