"""The Toxiproxy HTTP API: one route table, named handlers, errors that carry their status.

Routes, JSON shapes and status codes are Toxiproxy 2.x's (``api.go``): proxies are created
with 201, toxics with 200, deletions and ``/reset`` answer 204, errors are
``{"error": message, "status": code}``. Requests whose User-Agent starts with ``Mozilla/``
are refused with 403, as Toxiproxy does, so that a web page cannot drive the proxy.
Differences (documented in the README): ``listen`` defaults to ``127.0.0.1:0`` rather
than every interface, and toxicity outside 0..1 is a 400.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from inoculate.toxiproxy_server._errors import (
    ERR_BAD_REQUEST_BODY,
    ERR_INVALID_STREAM,
    ERR_INVALID_TOXIC_TYPE,
    ERR_MISSING_FIELD,
    ApiError,
)
from inoculate.toxiproxy_server._proxy import Proxy, ProxyCollection, parse_address
from inoculate.toxiproxy_server._registry import TOXIC_TYPES
from inoculate.toxiproxy_server._toxic import STREAMS, SharedStateToxic, Toxic, ToxicWrapper

__all__ = ["ROUTES", "VERSION", "build_app", "populate"]

VERSION = "2.12.0-inoculate"
DEFAULT_LISTEN = "127.0.0.1:0"
_COLLECTION = web.AppKey("collection", ProxyCollection)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- request decoding ---


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else _missing_body()
    except json.JSONDecodeError as exc:
        raise ERR_BAD_REQUEST_BODY.with_detail(exc.msg) from exc


def _missing_body() -> Any:
    raise ERR_BAD_REQUEST_BODY.with_detail("EOF")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ERR_BAD_REQUEST_BODY.with_detail("expected a JSON object")
    return value


def _typed(data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    if key not in data:
        return default
    value = data[key]
    # JSON booleans are Python ints: keep them apart from numbers.
    is_bool = isinstance(value, bool)
    valid = is_bool if kind is bool else isinstance(value, kind) and not is_bool
    if not valid:
        raise ERR_BAD_REQUEST_BODY.with_detail(f"{key} must be a {kind.__name__}")
    return value


def _proxy_from(data: Mapping[str, Any], where: str = "") -> tuple[Proxy, bool]:
    name = _typed(data, "name", str, "")
    upstream = _typed(data, "upstream", str, "")
    if not name:
        raise ERR_MISSING_FIELD.with_detail(f"name{where}")
    if not upstream:
        raise ERR_MISSING_FIELD.with_detail(f"upstream{where}")
    listen = _typed(data, "listen", str, "") or DEFAULT_LISTEN
    parse_address(listen, "listen")
    parse_address(upstream, "upstream")
    return Proxy(name, listen, upstream), _typed(data, "enabled", bool, True)


def _attributes(toxic_type: type[Toxic], attributes: Any) -> Toxic:
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise ERR_BAD_REQUEST_BODY.with_detail("attributes must be a JSON object")
    try:
        return toxic_type.model_validate(attributes)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'attributes'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ERR_BAD_REQUEST_BODY.with_detail(problems) from exc


def _toxicity(data: Mapping[str, Any], default: float) -> float:
    value = data.get("toxicity", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ERR_BAD_REQUEST_BODY.with_detail("toxicity must be a number from 0 to 1")
    return float(value)


def _wrap(name: str, stream: str, toxicity: float, toxic: Toxic) -> ToxicWrapper:
    shared = toxic.new_shared_state() if isinstance(toxic, SharedStateToxic) else None
    return ToxicWrapper(name, stream, toxicity, toxic, shared)


def decode_toxic(data: Mapping[str, Any]) -> ToxicWrapper:
    """A new toxic from the API's envelope (defaults as Toxiproxy's)."""
    toxic_type = TOXIC_TYPES.get(str(data.get("type")))
    stream = data.get("stream")
    if stream is None:
        stream = toxic_type.default_stream if toxic_type else "downstream"
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise ERR_INVALID_STREAM
    stream = stream.lower()
    if toxic_type is None:
        raise ERR_INVALID_TOXIC_TYPE
    if stream not in toxic_type.streams:
        raise ERR_INVALID_STREAM.with_detail(
            f"{toxic_type.type_name} acts on the {' or '.join(toxic_type.streams)} stream"
        )
    name = _typed(data, "name", str, "") or f"{toxic_type.type_name}_{stream}"
    toxic = _attributes(toxic_type, data.get("attributes"))
    return _wrap(name, stream, _toxicity(data, 1.0), toxic)


# --- handlers ---


def _collection(request: web.Request) -> ProxyCollection:
    return request.app[_COLLECTION]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


async def proxy_index(request: web.Request) -> web.Response:
    """GET /proxies: every proxy with its toxics, by name."""
    proxies = _collection(request).proxies
    return _json({name: proxy.to_json() for name, proxy in proxies.items()})


async def proxy_create(request: web.Request) -> web.Response:
    """POST /proxies: create (and by default start) a proxy; 201."""
    proxy, enabled = _proxy_from(_object(await _body(request)))
    collection = _collection(request)
    async with collection.lock:
        await collection.add(proxy, enabled)
    return _json(proxy.to_json(), 201)


async def populate(request: web.Request) -> web.Response:
    """POST /populate: create or replace a list of proxies; 201 with ``{"proxies": [...]}``."""
    try:
        proxies = await populate_from(_collection(request), await _body(request))
    except ApiError as error:
        return _json({**error.to_json(), "proxies": None}, error.status)
    return _json({"proxies": [proxy.to_json() for proxy in proxies]}, 201)


async def populate_from(collection: ProxyCollection, items: Any) -> list[Proxy]:
    """Validate every item first, then add or replace each proxy (also used by ``--config``)."""
    if not isinstance(items, list):
        raise ERR_BAD_REQUEST_BODY.with_detail("expected a JSON array of proxies")
    planned: list[tuple[Proxy, bool]] = []
    for number, item in enumerate(items, start=1):
        planned.append(_proxy_from(_object(item), f" at proxy {number}"))
    names = [proxy.name for proxy, _ in planned]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ERR_BAD_REQUEST_BODY.with_detail(f"duplicate proxy name {duplicates[0]!r}")
    async with collection.lock:
        return [await collection.add_or_replace(proxy, enabled) for proxy, enabled in planned]


async def proxy_show(request: web.Request) -> web.Response:
    """GET /proxies/{proxy}."""
    return _json(_collection(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    """POST|PATCH /proxies/{proxy}: change listen, upstream, enabled (false = ``down``)."""
    collection = _collection(request)
    proxy = collection.get(request.match_info["proxy"])
    data = _object(await _body(request))
    async with collection.lock:
        await proxy.update(
            _typed(data, "listen", str, proxy.listen),
            _typed(data, "upstream", str, proxy.upstream),
            _typed(data, "enabled", bool, proxy.enabled),
        )
    return _json(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    """DELETE /proxies/{proxy}: stop it and close its connections; 204."""
    collection = _collection(request)
    async with collection.lock:
        await collection.remove(request.match_info["proxy"])
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    """POST /reset: enable every proxy and remove every toxic; 204."""
    collection = _collection(request)
    async with collection.lock:
        for proxy in list(collection.proxies.values()):
            await proxy.start()
            await proxy.remove_all_toxics()
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    """GET /proxies/{proxy}/toxics."""
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json([toxic.to_json() for toxic in proxy.all_toxics()])


async def toxic_create(request: web.Request) -> web.Response:
    """POST /proxies/{proxy}/toxics: add a toxic to new and open connections; 200."""
    collection = _collection(request)
    proxy = collection.get(request.match_info["proxy"])
    wrapper = decode_toxic(_object(await _body(request)))
    async with collection.lock:
        proxy.add_toxic(wrapper)
    return _json(wrapper.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    """GET /proxies/{proxy}/toxics/{toxic}."""
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json(proxy.toxic(request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    """POST|PATCH /proxies/{proxy}/toxics/{toxic}: new attributes (merged) and/or toxicity."""
    collection = _collection(request)
    proxy = collection.get(request.match_info["proxy"])
    data = _object(await _body(request))
    async with collection.lock:
        current = proxy.toxic(request.match_info["toxic"])
        changes = data.get("attributes") or {}
        if not isinstance(changes, dict):
            raise ERR_BAD_REQUEST_BODY.with_detail("attributes must be a JSON object")
        toxic = _attributes(type(current.toxic), {**current.toxic.attributes(), **changes})
        updated = _wrap(current.name, current.stream, _toxicity(data, current.toxicity), toxic)
        await proxy.update_toxic(updated)
    return _json(updated.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    """DELETE /proxies/{proxy}/toxics/{toxic}: remove it from new and open connections; 204."""
    collection = _collection(request)
    proxy = collection.get(request.match_info["proxy"])
    async with collection.lock:
        await proxy.remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    """GET /version."""
    return _json({"version": VERSION})


async def health(request: web.Request) -> web.Response:
    """GET /health (ours, not Toxiproxy's): liveness for supervisors."""
    return _json({"status": "ok", "proxies": len(_collection(request).proxies)})


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/reset", reset),
    ("GET", "/proxies", proxy_index),
    ("POST", "/proxies", proxy_create),
    ("POST", "/populate", populate),
    ("GET", "/proxies/{proxy}", proxy_show),
    ("POST", "/proxies/{proxy}", proxy_update),
    ("PATCH", "/proxies/{proxy}", proxy_update),
    ("DELETE", "/proxies/{proxy}", proxy_delete),
    ("GET", "/proxies/{proxy}/toxics", toxic_index),
    ("POST", "/proxies/{proxy}/toxics", toxic_create),
    ("GET", "/proxies/{proxy}/toxics/{toxic}", toxic_show),
    ("POST", "/proxies/{proxy}/toxics/{toxic}", toxic_update),
    ("PATCH", "/proxies/{proxy}/toxics/{toxic}", toxic_update),
    ("DELETE", "/proxies/{proxy}/toxics/{toxic}", toxic_delete),
    ("GET", "/version", version),
    ("GET", "/health", health),
)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed\n")
    try:
        return await handler(request)
    except ApiError as error:
        return _json(error.to_json(), error.status)


def build_app(collection: ProxyCollection) -> web.Application:
    """The API application over a proxy collection."""
    app = web.Application(middlewares=[_errors])
    app[_COLLECTION] = collection
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler, name=f"{handler.__name__}_{method.lower()}")
    return app
