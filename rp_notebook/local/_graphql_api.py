"""`POST /graphql`: Runpod's GraphQL management API, served from `runpod_schema.graphql`.

Queries are parsed and validated by graphql-core against the SDL that ships with the package, so a
client that selects a field Runpod does not have, or passes an argument of the wrong type, gets
graphql's own validation message, as it would from Runpod. The runpod SDK's interpolated queries
(no variables) and variable-based clients (Runpod's Flash, rp_notebook's provisioning) both work.

Answers follow GraphQL-over-HTTP as Runpod practises it:

* a body that is not a GraphQL request, a syntax error, a validation error, or variables that do not
  coerce: HTTP 400 `{"errors": [{"message", "locations"?}]}` (no operation ran);
* a refused request (a business rule, `ManagementError`): HTTP 200 with the field `null` in `data`
  and `{"message", "locations", "path"}` in `errors`, the way Runpod sends them;
* a missing or wrong API key: 401 (the runpod SDK checks for exactly that).

Auth: `Authorization: Bearer <key>` (or the bare key), or `?api_key=<key>` as Runpod's docs show.
The key and the query string are never logged.

Resolvers are the methods of `_Root`, found by graphql-core's default resolver (a root field is a
method of the root value); nested objects are plain dicts, and a dict value that is a function
(`lowestPrice`, `User.endpoint`) is called with the field's arguments.

The schema carries every field real clients select or send (the runpod SDK, runpod-flash, runpodctl),
so their documents validate. What the local endpoint cannot honour is accepted and answered with null,
never an invented value: runtime facts of Runpod's platform (aiKey, version, workersStandby,
activeBuildid, idePodId), Flash environments (flashEnvironmentId), model caching (modelReferences),
template settings that nothing here runs (advancedStart, startJupyter, startScript, config, category,
isRunpod, boundEndpointId) and GPU facts it does not know (cudaCores, maxGpuCount*, minPodGpuCount,
the reserved prices, stockStatus). An endpoint has no network volumes (networkVolumeIds is [], and
attaching one is refused) and runs on this machine, so a CPU endpoint (instanceIds) is refused too.
Settings a client sends and reads back are stored even where they change nothing here (gpuIds,
locations, flashBootType, workersPFBTarget, the CUDA versions), so a client that compares what it
sent with what it reads (Flash's drift check) sees no change.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web
from graphql import GraphQLError, GraphQLSchema, build_schema, execute_sync, parse, validate

from ._management import (
    MANAGEMENT,
    USER_ID,
    EndpointRecord,
    ManagementError,
    ManagementStore,
    TemplateRecord,
    authorized,
    gpu_catalog,
)

__all__ = ["add_graphql_routes", "schema"]

log = logging.getLogger("rp_notebook.local")
F = TypeVar("F", bound=Callable[..., Any])

#: SaveTemplateInput field -> TemplateRecord field.
_TEMPLATE_INPUT = {
    "name": "name",
    "imageName": "image",
    "dockerArgs": "docker_args",
    "containerDiskInGb": "disk_gb",
    "volumeInGb": "volume_gb",
    "volumeMountPath": "volume_mount_path",
    "ports": "ports",
    "env": "env",
    "isServerless": "is_serverless",
    "isPublic": "is_public",
    "readme": "readme",
    "startSsh": "start_ssh",
    "containerRegistryAuthId": "registry_auth_id",
}
#: EndpointInput field -> EndpointRecord field (gpuIds, allowedCudaVersions, template are converted).
_ENDPOINT_INPUT = {
    "name": "name",
    "templateId": "template_id",
    "gpuCount": "gpu_count",
    "idleTimeout": "idle_timeout_s",
    "scalerType": "scaler_type",
    "scalerValue": "scaler_value",
    "workersMin": "workers_min",
    "workersMax": "workers_max",
    "workersPFBTarget": "workers_pfb_target",
    "executionTimeoutMs": "execution_timeout_ms",
    "flashBootType": "flashboot",
    "minCudaVersion": "min_cuda_version",
    "locations": "locations",
}
#: Record field -> the GraphQL name used in error messages.
_NAMES = {
    **{record: name for name, record in _ENDPOINT_INPUT.items()},
    **{record: name for name, record in _TEMPLATE_INPUT.items()},
    "pools": "gpuIds",
    "excluded_types": "gpuIds",
}


@functools.cache
def schema() -> GraphQLSchema:
    """The served schema, built once from the SDL shipped inside the package."""
    return build_schema(resources.files(__package__).joinpath("runpod_schema.graphql").read_text())


def _resolver(fn: F) -> F:
    """Business-rule refusals become GraphQL errors with the store's message; a bug is logged and
    answered with a generic message (its text could say anything)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ManagementError as exc:
            raise GraphQLError(exc.message) from None
        except GraphQLError:
            raise
        except Exception:
            log.exception("GraphQL resolver %s failed", fn.__name__)
            raise GraphQLError("internal error in the local endpoint (see the server log)") from None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------- output shapes
def _env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in env.items()]


def _seconds(value: float | None) -> int | None:
    return None if value is None else max(1, round(value))  # Int; adopted endpoints may have 0.5 s


def _template_out(template: TemplateRecord) -> dict[str, Any]:
    return {
        "id": template.id,
        "name": template.name,
        "imageName": template.image,
        "dockerArgs": template.docker_args,
        "containerDiskInGb": template.disk_gb,
        "volumeInGb": template.volume_gb,
        "volumeMountPath": template.volume_mount_path,
        "ports": ",".join(template.ports),
        "env": _env_list(template.env),
        "isServerless": template.is_serverless,
        "isPublic": template.is_public,
        "readme": template.readme,
        "startSsh": template.start_ssh,
        "containerRegistryAuthId": template.registry_auth_id,
        # Accepted (Flash sends them with its inline template) but nothing here runs them.
        "advancedStart": None,
        "startJupyter": None,
        "startScript": None,
        "config": None,
        "category": None,
        "isRunpod": None,
        "boundEndpointId": None,
    }


def _endpoint_out(store: ManagementStore, endpoint: EndpointRecord) -> dict[str, Any]:
    template = store.template(endpoint.template_id)
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "templateId": endpoint.template_id,
        "template": _template_out(template),
        "gpuIds": ",".join([*endpoint.pools, *(f"-{gpu}" for gpu in endpoint.excluded_types)]),
        "gpuCount": endpoint.gpu_count,
        # Adopted endpoints (gpuIds "") run on the CPU; every other one names GPU pools.
        "computeType": "GPU" if endpoint.pools else "CPU",
        "instanceIds": None,
        "networkVolumeId": None,
        "networkVolume": None,
        "networkVolumeIds": [],  # none attached: attaching one is refused
        "locations": endpoint.locations,
        "idleTimeout": _seconds(endpoint.idle_timeout_s),
        "scalerType": endpoint.scaler_type,
        "scalerValue": max(1, round(endpoint.scaler_value)),  # Int; REST allows a 0.5 s queue delay
        "workersMin": endpoint.workers_min,
        "workersMax": endpoint.workers_max,
        "workersStandby": None,
        "workersPFBTarget": endpoint.workers_pfb_target,
        "allowedCudaVersions": ",".join(endpoint.allowed_cuda_versions),
        "minCudaVersion": endpoint.min_cuda_version,
        # 0 is Runpod's "no execution timeout" (see _endpoint_values).
        "executionTimeoutMs": endpoint.execution_timeout_ms or 0,
        "flashBootType": endpoint.flashboot,
        "flashEnvironmentId": None,
        "type": "QB",
        "aiKey": None,  # never hand out a key
        "userId": USER_ID,
        "version": None,
        "createdAt": endpoint.created_at,
        "env": _env_list(template.env),
        "activeBuildid": None,
        "idePodId": None,
        "modelReferences": None,
    }


def _gpu_out(gpu: dict[str, Any]) -> dict[str, Any]:
    price = gpu["securePrice"]

    def lowest_price(info: Any, input: dict[str, Any] | None = None) -> dict[str, Any]:
        count = (input or {}).get("gpuCount") or 1
        return {
            "gpuName": gpu["displayName"],
            "gpuTypeId": gpu["id"],
            "minimumBidPrice": None,
            "uninterruptablePrice": None if price is None else price * count,
            "stockStatus": None,
        }

    return {
        "id": gpu["id"],
        "displayName": gpu["displayName"],
        "manufacturer": gpu["manufacturer"],
        "memoryInGb": gpu["memoryInGb"],
        "cudaCores": None,
        "maxGpuCount": None,
        "maxGpuCountCommunityCloud": None,
        "maxGpuCountSecureCloud": None,
        "minPodGpuCount": None,
        "secureCloud": True,
        "communityCloud": False,
        "securePrice": price,
        "communityPrice": None,
        "oneMonthPrice": None,
        "threeMonthPrice": None,
        "sixMonthPrice": None,
        "oneWeekPrice": None,
        "communitySpotPrice": None,
        "secureSpotPrice": None,
        "lowestPrice": lowest_price,
    }


# ---------------------------------------------------------------------- input conversion
def _template_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, record_field in _TEMPLATE_INPUT.items():
        value = raw.get(name)
        if value is None:  # absent or null: the default (create) or unchanged (update)
            continue
        if name == "ports":
            value = [port.strip() for port in value.split(",") if port.strip()]
        elif name == "env":
            value = {item["key"]: item["value"] for item in value if item is not None}
        values[record_field] = value
    return values


def _endpoint_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        record_field: raw[name] for name, record_field in _ENDPOINT_INPUT.items() if raw.get(name) is not None
    }
    if raw.get("gpuIds") is not None:
        items = [item.strip() for item in raw["gpuIds"].split(",") if item.strip()]
        values["pools"] = [item for item in items if not item.startswith("-")]
        values["excluded_types"] = [item[1:].strip() for item in items if item.startswith("-")]
    if raw.get("allowedCudaVersions") is not None:
        values["allowed_cuda_versions"] = [
            v.strip() for v in raw["allowedCudaVersions"].split(",") if v.strip()
        ]
    if raw.get("executionTimeoutMs") == 0:
        # Runpod's execution timeout can be turned off; 0 is how Flash sends "none" (its default,
        # and it only applies a timeout when the value is > 0). The record's None is "no timeout".
        values["execution_timeout_ms"] = None
    if raw.get("type") == "LB":
        raise ManagementError(
            400, "load-balancing endpoints (type LB) are not supported by the local endpoint"
        )
    volumes = [raw.get("networkVolumeId")]
    volumes += [item.get("networkVolumeId") for item in raw.get("networkVolumeIds") or [] if item]
    if volume := next((v for v in volumes if v), None):
        raise ManagementError(400, f'network volume "{volume}" not found (the local endpoint has none)')
    if raw.get("instanceIds"):
        raise ManagementError(
            400,
            f"CPU endpoints (instanceIds {', '.join(map(str, raw['instanceIds']))}) are not supported by "
            "the local endpoint; give gpuIds instead (its workers run on this machine's CPU either way)",
        )
    return values


# ---------------------------------------------------------------------- resolvers
class _Root:
    """The root value: one method per Query and Mutation field, named exactly as the field (camelCase,
    with its argument names), since graphql-core finds a root resolver by the field name."""

    def __init__(self, store: ManagementStore) -> None:
        self.store = store

    @_resolver
    def myself(self, info: Any) -> dict[str, Any]:
        store = self.store
        return {
            "id": USER_ID,
            "email": "local@localhost",
            "pubKey": None,
            "endpoints": [_endpoint_out(store, e) for e in store.endpoints()],
            "endpoint": self.endpoint,  # called with its arguments
            "podTemplates": [_template_out(t) for t in store.templates()],
            "networkVolumes": [],
        }

    @_resolver
    def gpuTypes(self, info: Any, input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted: set[str] | None = None
        if input and input.get("id") is not None:
            wanted = {input["id"]}
        if input and input.get("ids") is not None:
            wanted = (wanted or set()) | {gpu for gpu in input["ids"] if gpu}
        gpus = gpu_catalog(self.store.gpu_prices)
        return [_gpu_out(gpu) for gpu in gpus if wanted is None or gpu["id"] in wanted]

    @_resolver
    def podTemplate(self, info: Any, id: str) -> dict[str, Any] | None:
        template = next((t for t in self.store.templates() if t.id == id), None)
        return None if template is None else _template_out(template)

    @_resolver
    def endpoint(self, info: Any, id: str) -> dict[str, Any] | None:
        """`endpoint(id:)`, at the root and under `myself` (Flash asks there): null if there is none."""
        endpoint = next((e for e in self.store.endpoints() if e.id == id), None)
        return None if endpoint is None else _endpoint_out(self.store, endpoint)

    @_resolver
    def saveTemplate(self, info: Any, input: dict[str, Any] | None = None) -> dict[str, Any]:
        if not input:
            raise ManagementError(400, "saveTemplate needs an input")
        if input.get("volumeInGb") is None:  # nullable only for EndpointInput.template (see the SDL)
            raise ManagementError(400, "saveTemplate needs volumeInGb (0 for a serverless template)")
        values = _template_values(input)
        if input.get("id"):
            return _template_out(self.store.update_template(input["id"], values, _NAMES))
        return _template_out(self.store.create_template(values, _NAMES))

    @_resolver
    def deleteTemplate(self, info: Any, templateName: str) -> None:
        self.store.delete_template(self.store.template_named(templateName).id)

    @_resolver
    def saveEndpoint(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        values = _endpoint_values(input)
        inline = input.get("template")
        if inline is not None and input.get("templateId"):
            raise ManagementError(400, "give either templateId or template, not both")
        if inline is None and not input.get("id") and "template_id" not in values:
            raise ManagementError(400, "templateId is required to create an endpoint")
        if not input.get("id") and input.get("gpuIds") is None:  # nullable for CPU endpoints only
            raise ManagementError(400, "gpuIds is required to create an endpoint")
        if inline is not None:
            values["template_id"] = self.store.create_template(_template_values(inline), _NAMES).id
        try:
            if input.get("id"):
                endpoint = self.store.update_endpoint(input["id"], values, _NAMES)
            else:
                endpoint = self.store.create_endpoint(values, _NAMES)
        except ManagementError:
            if inline is not None:  # all or nothing: no template left behind by a refused endpoint
                self.store.delete_template(values["template_id"])
            raise
        return _endpoint_out(self.store, endpoint)

    @_resolver
    def deleteEndpoint(self, info: Any, id: str) -> None:
        self.store.delete_endpoint(id)

    @_resolver
    def updateEndpointTemplate(self, info: Any, input: dict[str, Any] | None = None) -> dict[str, Any]:
        if not input:
            raise ManagementError(400, "updateEndpointTemplate needs an input")
        endpoint = self.store.update_endpoint(
            input["endpointId"], {"template_id": input["templateId"]}, _NAMES
        )
        return _endpoint_out(self.store, endpoint)


# ---------------------------------------------------------------------- route
def _errors(status: int, *messages: str) -> web.Response:
    return web.json_response({"errors": [{"message": message} for message in messages]}, status=status)


async def graphql_route(request: web.Request) -> web.StreamResponse:
    if not authorized(request, allow_query_key=True):
        return _errors(401, "Unauthorized: missing or invalid API key (Authorization: Bearer <key>)")
    try:
        body = await request.json()
    except ValueError:
        return _errors(400, 'the request body must be JSON: {"query": "...", "variables": {...}}')
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return _errors(400, 'the request body must be a JSON object with a "query" string')
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return _errors(400, '"variables" must be a JSON object')
    operation_name = body.get("operationName")
    try:
        document = parse(body["query"])
    except GraphQLError as exc:
        return web.json_response({"errors": [exc.formatted]}, status=400)
    errors = validate(schema(), document)
    if errors:
        return web.json_response({"errors": [e.formatted for e in errors]}, status=400)
    result = execute_sync(
        schema(),
        document,
        root_value=_Root(request.app[MANAGEMENT]),
        variable_values=variables,
        operation_name=operation_name if isinstance(operation_name, str) else None,
    )
    # Every root field is nullable, so data is None only when nothing ran (variables that do not
    # coerce, an unknown operation name): a bad request, not a refused one.
    status = 400 if result.data is None and result.errors else 200
    return web.json_response(result.formatted, status=status)


def add_graphql_routes(app: web.Application) -> None:
    app.router.add_post("/graphql", graphql_route)
