"""Runpod's REST v2 management API (the part serverless needs), on the shared `ManagementStore`.

    GET    /v2/catalog/gpus          {"gpus": [{"id", "displayName", "memoryInGb", "pool", "securePrice", ...}]}
    GET    /v2/templates             {"templates": [T]}
    POST   /v2/templates             {"name", "image", "disk", "env": {}, "args", "ports": [], "readme",
                                      "isServerless"} -> 201 T
    GET    /v2/templates/{id}        T            PATCH: any subset of the POST body   DELETE: 204
    GET    /v2/serverless            {"endpoints": [E]}
    POST   /v2/serverless            {"name", "type": "QUEUE", "templateId", "gpu": {"pools", "excludedTypes",
                                      "count", "allowedCudaVersions"}, "scaling": {"type", "queueDelay"},
                                      "workers": {"min", "max", "idleTimeout"}, "flashboot", "timeout"} -> 201 E
    GET    /v2/serverless/{id}       E            PATCH: any subset (of `gpu`/`workers` too)  DELETE: 204

These paths share the `/v2/` prefix with the job API (`/v2/{endpoint_id}/run`): they are registered
first, and `EndpointConfig` refuses the ids `serverless`, `templates` and `catalog`.

Errors are RFC 9457 problem documents (`application/problem+json`): `{"title", "status", "detail",
"errors": [{"field", "message"}]}`; 400 for a bad body (the field is named), 401 for a missing or
wrong key, 404 for an unknown id, 409 for a conflict (a taken template name, a template in use, an
endpoint not scaled to zero). As documented for Runpod, a PATCH that sends `gpu.pools` without
`gpu.excludedTypes` clears the exclusions.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._management import (
    MANAGEMENT,
    EndpointRecord,
    ManagementError,
    ManagementStore,
    TemplateRecord,
    authorized,
    gpu_catalog,
)

__all__ = ["add_rest_routes", "endpoint_json", "problem", "template_json"]

Handler = Callable[[web.Request, ManagementStore], Awaitable[web.StreamResponse]]

#: Record field -> REST v2 field, for error messages and `errors[].field`.
_NAMES = {
    "template_id": "templateId",
    "pools": "gpu.pools",
    "excluded_types": "gpu.excludedTypes",
    "gpu_count": "gpu.count",
    "workers_min": "workers.min",
    "workers_max": "workers.max",
    "idle_timeout_s": "workers.idleTimeout",
    "execution_timeout_ms": "timeout",
    "scaler_type": "scaling.type",
    "scaler_value": "scaling.queueDelay",
    "disk_gb": "disk",
    "docker_args": "args",
    "is_serverless": "isServerless",
}
_FLASHBOOT = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")
_SCALER_KEYS = {"QUEUE_DELAY": "queueDelay", "REQUEST_COUNT": "requestCount"}


def problem(status: int, detail: str, field: str | None = None) -> web.Response:
    body = {
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": [{"field": field, "message": detail}] if field else [],
    }
    return web.json_response(body, status=status, content_type="application/problem+json")


class _Body:
    """Typed access to one JSON object of a request body; a wrong type is a 400 naming the field."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _bad(self, key: str, expected: str) -> ManagementError:
        name = f"{self.prefix}{key}"
        return ManagementError(400, f"{name} must be {expected}, got {self.data[key]!r}", name)

    def get(self, key: str, kind: str, *, required: bool = False) -> Any:
        """`kind`: str, int, number, bool, str_list, str_map or object. None when absent."""
        if key not in self.data or self.data[key] is None:
            if required:
                name = f"{self.prefix}{key}"
                raise ManagementError(400, f"{name} is required", name)
            return None
        value = self.data[key]
        if kind == "str" and isinstance(value, str):
            return value
        if kind in ("int", "number") and isinstance(value, int | float) and not isinstance(value, bool):
            if kind == "number" and math.isfinite(value):
                return value
            if kind == "int" and float(value).is_integer():
                return int(value)
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "str_list" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        if kind == "str_map" and isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        if kind == "object" and isinstance(value, dict):
            return _Body(value, f"{self.prefix}{key}.")
        expected = {
            "str": "a string",
            "int": "an integer",
            "number": "a number",
            "bool": "true or false",
            "str_list": "a list of strings",
            "str_map": "an object of string values",
            "object": "an object",
        }[kind]
        raise self._bad(key, expected)

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value: str | None = self.get(key, "str")
        if value is not None and value not in choices:
            raise self._bad(key, " or ".join(choices))
        return value


async def _read_body(request: web.Request) -> _Body:
    try:
        data = await request.json()
    except ValueError:
        raise ManagementError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ManagementError(400, "the request body must be a JSON object")
    return _Body(data)


# ---------------------------------------------------------------------- shapes
def template_json(template: TemplateRecord) -> dict[str, Any]:
    return {
        "id": template.id,
        "name": template.name,
        "image": template.image,
        "disk": template.disk_gb,
        "env": dict(template.env),
        "args": template.docker_args,
        "ports": list(template.ports),
        "readme": template.readme,
        "isServerless": template.is_serverless,
    }


def endpoint_json(endpoint: EndpointRecord) -> dict[str, Any]:
    idle = endpoint.idle_timeout_s
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "type": "QUEUE",
        "templateId": endpoint.template_id,
        "gpu": {
            "pools": list(endpoint.pools),
            "excludedTypes": list(endpoint.excluded_types),
            "count": endpoint.gpu_count,
            "allowedCudaVersions": list(endpoint.allowed_cuda_versions),
        },
        "scaling": {"type": endpoint.scaler_type, _SCALER_KEYS[endpoint.scaler_type]: endpoint.scaler_value},
        "workers": {
            "min": endpoint.workers_min,
            "max": endpoint.workers_max,
            "idleTimeout": None if idle is None else max(1, round(idle)),
        },
        "flashboot": endpoint.flashboot,
        "timeout": endpoint.execution_timeout_ms,
        "createdAt": endpoint.created_at,
    }


def _template_values(body: _Body, *, create: bool) -> dict[str, Any]:
    fields = {
        "name": ("name", "str"),
        "image": ("image", "str"),
        "disk": ("disk_gb", "int"),
        "env": ("env", "str_map"),
        "args": ("docker_args", "str"),
        "ports": ("ports", "str_list"),
        "readme": ("readme", "str"),
        "isServerless": ("is_serverless", "bool"),
        "isPublic": ("is_public", "bool"),
    }
    values = {}
    for key, (record_field, kind) in fields.items():
        value = body.get(key, kind, required=create and key in ("name", "image"))
        if value is not None:
            values[record_field] = value
    return values


def _endpoint_values(body: _Body, current: EndpointRecord | None) -> dict[str, Any]:
    """Record fields from a create (current None) or PATCH body; a PATCH may send any subset."""
    create = current is None
    values: dict[str, Any] = {}
    if (name := body.get("name", "str", required=create)) is not None:
        values["name"] = name
    if body.choice("type", ("QUEUE", "LOAD_BALANCER")) == "LOAD_BALANCER":
        raise ManagementError(400, "LOAD_BALANCER endpoints are not supported by the local endpoint", "type")
    if create and "templateId" not in body and "image" in body:
        raise ManagementError(
            400,
            "templateId is required: the local endpoint does not create templates inline "
            "(POST /v2/templates first)",
            "templateId",
        )
    if (template_id := body.get("templateId", "str", required=create)) is not None:
        values["template_id"] = template_id
    if (gpu := body.get("gpu", "object", required=create)) is not None:
        if (pools := gpu.get("pools", "str_list", required=create)) is not None:
            values["pools"] = pools
            values["excluded_types"] = []  # pools without excludedTypes clears them (Runpod's PATCH)
        if (excluded := gpu.get("excludedTypes", "str_list")) is not None:
            values["excluded_types"] = excluded
        if (count := gpu.get("count", "int")) is not None:
            values["gpu_count"] = count
        if (cuda := gpu.get("allowedCudaVersions", "str_list")) is not None:
            values["allowed_cuda_versions"] = cuda
        if (min_cuda := gpu.get("minCudaVersion", "str")) is not None:
            values["min_cuda_version"] = min_cuda
    if (scaling := body.get("scaling", "object")) is not None:
        scaler_type = scaling.choice("type", tuple(_SCALER_KEYS))
        scaler_type = scaler_type or (current.scaler_type if current else "QUEUE_DELAY")
        values["scaler_type"] = scaler_type
        if (value := scaling.get(_SCALER_KEYS[scaler_type], "number")) is not None:
            values["scaler_value"] = value
    if (workers := body.get("workers", "object")) is not None:
        for key, record_field in (
            ("min", "workers_min"),
            ("max", "workers_max"),
            ("idleTimeout", "idle_timeout_s"),
        ):
            if (value := workers.get(key, "int")) is not None:
                values[record_field] = value
    if (flashboot := body.choice("flashboot", _FLASHBOOT)) is not None:
        values["flashboot"] = flashboot
    if (timeout := body.get("timeout", "int")) is not None:
        values["execution_timeout_ms"] = timeout
    if body.get("networkVolumes", "str_list") or body.get("networkVolumeId", "str"):
        raise ManagementError(400, "the local endpoint has no network volumes", "networkVolumes")
    if create:  # REST v2's documented defaults (GraphQL's differ: idle 5 s, timeout 600 s)
        values.setdefault("idle_timeout_s", 10)
        values.setdefault("execution_timeout_ms", 300_000)
    return values


# ---------------------------------------------------------------------- routes
def _route(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        if not authorized(request):
            return problem(401, "missing or invalid API key (Authorization: Bearer <key>)")
        try:
            return await handler(request, request.app[MANAGEMENT])
        except ManagementError as exc:
            return problem(exc.status, exc.message, _NAMES.get(exc.field or "", exc.field))

    route.__name__ = handler.__name__
    return route


async def list_gpus(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    gpus = gpu_catalog(store.gpu_prices)
    keys = ("id", "displayName", "manufacturer", "memoryInGb", "pool", "securePrice", "communityPrice")
    return web.json_response({"gpus": [{key: gpu[key] for key in keys} for gpu in gpus]})


async def list_templates(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    return web.json_response({"templates": [template_json(t) for t in store.templates()]})


async def create_template(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    values = _template_values(await _read_body(request), create=True)
    return web.json_response(template_json(store.create_template(values, _NAMES)), status=201)


async def get_template(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    return web.json_response(template_json(store.template(request.match_info["template_id"])))


async def update_template(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    values = _template_values(await _read_body(request), create=False)
    template = store.update_template(request.match_info["template_id"], values, _NAMES)
    return web.json_response(template_json(template))


async def delete_template(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    store.delete_template(request.match_info["template_id"])
    return web.Response(status=204)


async def list_endpoints(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    return web.json_response({"endpoints": [endpoint_json(e) for e in store.endpoints()]})


async def create_endpoint(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    values = _endpoint_values(await _read_body(request), None)
    return web.json_response(endpoint_json(store.create_endpoint(values, _NAMES)), status=201)


async def get_endpoint(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    return web.json_response(endpoint_json(store.endpoint(request.match_info["endpoint_id"])))


async def update_endpoint(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    current = store.endpoint(request.match_info["endpoint_id"])
    values = _endpoint_values(await _read_body(request), current)
    return web.json_response(endpoint_json(store.update_endpoint(current.id, values, _NAMES)))


async def delete_endpoint(request: web.Request, store: ManagementStore) -> web.StreamResponse:
    store.delete_endpoint(request.match_info["endpoint_id"])
    return web.Response(status=204)


def add_rest_routes(app: web.Application) -> None:
    """Register REST v2; call before the job routes, which share the /v2/ prefix."""
    router = app.router
    router.add_get("/v2/catalog/gpus", _route(list_gpus))
    router.add_get("/v2/templates", _route(list_templates))
    router.add_post("/v2/templates", _route(create_template))
    router.add_get("/v2/templates/{template_id}", _route(get_template))
    router.add_patch("/v2/templates/{template_id}", _route(update_template))
    router.add_delete("/v2/templates/{template_id}", _route(delete_template))
    router.add_get("/v2/serverless", _route(list_endpoints))
    router.add_post("/v2/serverless", _route(create_endpoint))
    router.add_get("/v2/serverless/{endpoint_id}", _route(get_endpoint))
    router.add_patch("/v2/serverless/{endpoint_id}", _route(update_endpoint))
    router.add_delete("/v2/serverless/{endpoint_id}", _route(delete_endpoint))
