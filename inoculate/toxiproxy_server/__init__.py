"""A TCP proxy that speaks the Toxiproxy HTTP API, with Toxiproxy's toxics and HTTP-aware ones.

Run it with ``python -m inoculate.toxiproxy_server --host 127.0.0.1 --port 8474``; drive it with
any Toxiproxy client (``toxiproxy-python``, ``chaostoolkit-toxiproxy``, curl) or with the
``inoculate.extensions.toxiproxy`` activities. See the README's "Network faults" section.
"""

from inoculate.toxiproxy_server._api import ROUTES, VERSION, build_app
from inoculate.toxiproxy_server._errors import ApiError
from inoculate.toxiproxy_server._registry import TOXIC_TYPES
from inoculate.toxiproxy_server._server import (
    ProxyServerError,
    ProxyServerProcess,
    serve,
    start_server_process,
)
from inoculate.toxiproxy_server._toxic import Chunk, Toxic, ToxicStub

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
