"""The GraphQL backend: `POST {RUNPOD_API_BASE_URL}/graphql`, every value sent as a GraphQL variable.

The runpod SDK builds its mutations by f-string interpolation, so a `"` in a name, image or env
value breaks the query (or changes it). Here the documents are constants and all values travel in
`variables`, as Runpod's own Flash SDK does (shared/docs/runpod-platform.md §2.1).

GraphQL reports errors with HTTP 200 in an `errors` array (and validation errors with 400): both
become `ProvisioningError` carrying the server's message unchanged.

Every document here is validated against the schema the local endpoint serves
(rp_notebook/local/runpod_schema.graphql) by the tests, so a typo in a field name fails in CI, not
in a user's notebook.
"""

from __future__ import annotations

from typing import Any

from ..client._http import HTTPTransport
from ..config import Settings
from ..errors import APIError, AuthenticationError, ProvisioningError, RateLimitedError, ServerError
from ._types import Endpoint, EndpointSpec, GpuType, Template, TemplateSpec

__all__ = ["DOCUMENTS", "GraphQLBackend"]

_TEMPLATE_FIELDS = "id name imageName containerDiskInGb isServerless env { key value }"
_ENDPOINT_FIELDS = (
    "id name templateId gpuIds gpuCount workersMin workersMax idleTimeout flashBootType executionTimeoutMs"
)

GPU_TYPES = "query GpuTypes { gpuTypes { id displayName memoryInGb securePrice communityPrice } }"
TEMPLATES = f"query Templates {{ myself {{ podTemplates {{ {_TEMPLATE_FIELDS} }} }} }}"
ENDPOINTS = f"query Endpoints {{ myself {{ endpoints {{ {_ENDPOINT_FIELDS} }} }} }}"
SAVE_TEMPLATE = (
    "mutation SaveTemplate($input: SaveTemplateInput) "
    f"{{ saveTemplate(input: $input) {{ {_TEMPLATE_FIELDS} }} }}"
)
SAVE_ENDPOINT = f"mutation SaveEndpoint($input: EndpointInput!) {{ saveEndpoint(input: $input) {{ {_ENDPOINT_FIELDS} }} }}"
DELETE_ENDPOINT = "mutation DeleteEndpoint($id: String!) { deleteEndpoint(id: $id) }"
DELETE_TEMPLATE = (
    "mutation DeleteTemplate($templateName: String!) { deleteTemplate(templateName: $templateName) }"
)

#: Every document this backend sends (the tests validate each against the schema).
DOCUMENTS = (GPU_TYPES, TEMPLATES, ENDPOINTS, SAVE_TEMPLATE, SAVE_ENDPOINT, DELETE_ENDPOINT, DELETE_TEMPLATE)


class GraphQLBackend:
    api = "graphql"

    def __init__(self, settings: Settings, *, transport: HTTPTransport | None = None) -> None:
        self._http = transport or HTTPTransport(settings, settings.api_base_url)

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ reading
    def gpu_types(self) -> list[GpuType]:
        data = self._call(GPU_TYPES, {}, what="list GPU types")
        return [
            GpuType(
                id=gpu["id"],
                display_name=gpu.get("displayName") or gpu["id"],
                memory_gb=gpu.get("memoryInGb"),
                secure_price=gpu.get("securePrice"),
                community_price=gpu.get("communityPrice"),
            )
            for gpu in data.get("gpuTypes") or []
            if gpu and gpu.get("id")
        ]

    def templates(self) -> list[Template]:
        data = self._call(TEMPLATES, {}, what="list templates")
        return [_template(t) for t in (data.get("myself") or {}).get("podTemplates") or [] if t]

    def endpoints(self) -> list[Endpoint]:
        data = self._call(ENDPOINTS, {}, what="list endpoints")
        return [_endpoint(e) for e in (data.get("myself") or {}).get("endpoints") or [] if e]

    # ------------------------------------------------------------------ changing
    def create_template(self, spec: TemplateSpec) -> Template:
        variables = {
            "input": {
                "name": spec.name,
                "imageName": spec.image,
                "dockerArgs": spec.docker_args,
                "containerDiskInGb": spec.container_disk_gb,
                "volumeInGb": 0,  # required; serverless workers have no pod volume
                "env": [{"key": k, "value": v} for k, v in spec.env.items()],  # non-nullable: [] not null
                "isServerless": True,
                "readme": spec.readme,
                "ports": "",
            }
        }
        # Not retried on a lost answer: a repeat would fail on the (now taken) name and hide the id.
        data = self._call(SAVE_TEMPLATE, variables, what=f"create template {spec.name}", idempotent=False)
        return _template(data["saveTemplate"])

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint:
        data = self._call(
            SAVE_ENDPOINT,
            {"input": _endpoint_input(spec)},
            what=f"create endpoint {spec.name}",
            idempotent=False,
        )
        return _endpoint(data["saveEndpoint"])

    def scale_endpoint(self, endpoint: Endpoint, *, workers_min: int, workers_max: int) -> Endpoint:
        # saveEndpoint with an id updates; Runpod's docs resend the required fields with it, and
        # the other settings are sent as read so an update cannot reset them to defaults.
        update: dict[str, Any] = {
            "id": endpoint.id,
            "name": endpoint.name,
            "templateId": endpoint.template_id,
            "gpuIds": endpoint.gpu_ids,
            "workersMin": workers_min,
            "workersMax": workers_max,
        }
        if endpoint.idle_timeout_s is not None:
            update["idleTimeout"] = endpoint.idle_timeout_s
        if endpoint.gpu_count is not None:
            update["gpuCount"] = endpoint.gpu_count
        if endpoint.execution_timeout_s is not None:
            update["executionTimeoutMs"] = round(endpoint.execution_timeout_s * 1000)
        if endpoint.flashboot and endpoint.flashboot != "OFF":
            update["flashBootType"] = endpoint.flashboot
        data = self._call(SAVE_ENDPOINT, {"input": update}, what=f"scale endpoint {endpoint.id}")
        return _endpoint(data["saveEndpoint"])

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._call(DELETE_ENDPOINT, {"id": endpoint_id}, what=f"delete endpoint {endpoint_id}")

    def delete_template(self, template: Template) -> None:
        # GraphQL deletes templates by name, not id.
        self._call(DELETE_TEMPLATE, {"templateName": template.name}, what=f"delete template {template.name}")

    # ------------------------------------------------------------------ transport
    def _redact(self, text: str) -> str:
        # A server may quote the request back, key included; the message is shown as it is.
        return self._http.settings.redact(text)

    def _call(
        self, document: str, variables: dict[str, Any], *, what: str, idempotent: bool = True
    ) -> dict[str, Any]:
        try:
            body = self._http.request(
                "POST",
                "graphql",
                body={"query": document, "variables": variables},
                idempotent=idempotent,
                what=what,
            )
        except (AuthenticationError, RateLimitedError, ServerError):
            raise
        except APIError as exc:  # 400: the document failed validation; the message says why
            messages = _error_messages(exc.body)
            if not messages:
                raise
            raise ProvisioningError(
                f"{what}: {self._redact(messages)}", status_code=exc.status_code, body=exc.body
            ) from None
        messages = _error_messages(body)
        if messages:
            raise ProvisioningError(f"{what}: {self._redact(messages)}", body=body)  # GraphQL: HTTP 200
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ProvisioningError(
                f"{what}: the answer has no data: {self._redact(str(body))[:200]}", body=body
            )
        return data


def _error_messages(body: Any) -> str:
    if not isinstance(body, dict) or not body.get("errors"):
        return ""
    return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"])


def _endpoint_input(spec: EndpointSpec) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": spec.name,
        "templateId": spec.template_id,
        "gpuIds": spec.gpu_ids,
        "gpuCount": spec.gpu_count,
        "workersMin": spec.workers_min,
        "workersMax": spec.workers_max,
        "idleTimeout": spec.idle_timeout_s,
        "scalerType": spec.scaler_type,
        "scalerValue": spec.scaler_value,
        "executionTimeoutMs": spec.execution_timeout_s * 1000,
    }
    if spec.id is not None:
        fields["id"] = spec.id
    if spec.flashboot != "OFF":  # the SDK sends flashBootType only to turn it on
        fields["flashBootType"] = spec.flashboot
    if spec.allowed_cuda_versions:
        fields["allowedCudaVersions"] = ",".join(spec.allowed_cuda_versions)  # a comma-separated string
    return fields


def _template(raw: dict[str, Any]) -> Template:
    return Template(
        id=raw["id"],
        name=raw.get("name") or "",
        image=raw.get("imageName") or "",
        container_disk_gb=raw.get("containerDiskInGb"),
        env={e["key"]: e.get("value") or "" for e in raw.get("env") or [] if e and e.get("key")},
        is_serverless=bool(raw.get("isServerless", True)),
    )


def _endpoint(raw: dict[str, Any]) -> Endpoint:
    timeout_ms = raw.get("executionTimeoutMs")
    return Endpoint(
        id=raw["id"],
        name=raw.get("name") or "",
        template_id=raw.get("templateId"),
        gpu_ids=raw.get("gpuIds") or "",
        workers_min=int(raw.get("workersMin") or 0),
        workers_max=int(raw.get("workersMax") or 0),
        idle_timeout_s=raw.get("idleTimeout"),
        flashboot=raw.get("flashBootType"),
        execution_timeout_s=timeout_ms / 1000 if timeout_ms is not None else None,
        gpu_count=raw.get("gpuCount"),
    )
