"""A TCP proxy that speaks the Toxiproxy HTTP API, with Toxiproxy's toxics and HTTP-aware ones.

Run it with ``python -m extensions.netproxy --host 127.0.0.1 --port 8474``; drive it with
any Toxiproxy client (``toxiproxy-python``, ``chaostoolkit-toxiproxy``, curl) or with the
``extensions.network`` activities. See the README's "Network faults" section.
"""

from extensions.netproxy._api import ROUTES, VERSION, build_app
from extensions.netproxy._errors import ApiError
from extensions.netproxy._registry import TOXIC_TYPES
from extensions.netproxy._server import (
    ProxyServerError,
    ProxyServerProcess,
    serve,
    start_server_process,
)
from extensions.netproxy._toxic import Chunk, Toxic, ToxicStub

__all__ = [
    "ROUTES",
    "TOXIC_TYPES",
    "VERSION",
    "ApiError",
    "Chunk",
    "ProxyServerError",
    "ProxyServerProcess",
    "Toxic",
    "ToxicStub",
    "build_app",
    "serve",
    "start_server_process",
]
