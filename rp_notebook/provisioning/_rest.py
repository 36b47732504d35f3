"""The REST v2 backend: `{RUNPOD_API_BASE_URL}/v2/serverless`, `/v2/templates`, `/v2/catalog/gpus`.

REST v2 is the successor of the GraphQL API (which retires in early 2027). Its shapes differ:
an endpoint's GPUs are `{"pools": [...], "excludedTypes": [...]}` rather than GraphQL's
`"POOL,-Type"` string, workers are `{"min", "max", "idleTimeout"}`, the timeout is in ms, a
template's env is an object, and list answers are wrapped (`{"endpoints": [...]}`). Errors are RFC
9457 problem documents (`title`, `detail`, `errors[]`): 4xx refusals become `ProvisioningError`
with the server's detail unchanged (shared/docs/runpod-platform.md §7.2).

REST v2 is in beta; fields are read leniently (the v1 spellings `imageName`, `containerDiskInGb`
are accepted too) so a renamed field degrades a listing, not the whole call.
"""

from __future__ import annotations

from typing import Any

from ..client._http import HTTPTransport
from ..config import Settings
from ..errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    ProvisioningError,
    RateLimitedError,
    ServerError,
)
from ._types import Endpoint, EndpointSpec, GpuType, Template, TemplateSpec

__all__ = ["RestBackend"]


class RestBackend:
    api = "rest"

    def __init__(self, settings: Settings, *, transport: HTTPTransport | None = None) -> None:
        self._http = transport or HTTPTransport(settings, f"{settings.api_base_url}/v2")

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ reading
    def gpu_types(self) -> list[GpuType]:
        return [
            GpuType(
                id=gpu["id"],
                display_name=gpu.get("displayName") or gpu["id"],
                memory_gb=gpu.get("memoryInGb"),
                pool=gpu.get("pool"),
                secure_price=gpu.get("securePrice"),
                community_price=gpu.get("communityPrice"),
            )
            for gpu in _items(self._call("GET", "catalog/gpus", what="list GPU types"), "gpus")
            if gpu.get("id")
        ]

    def templates(self) -> list[Template]:
        return [
            _template(t) for t in _items(self._call("GET", "templates", what="list templates"), "templates")
        ]

    def endpoints(self) -> list[Endpoint]:
        return [
            _endpoint(e) for e in _items(self._call("GET", "serverless", what="list endpoints"), "endpoints")
        ]

    # ------------------------------------------------------------------ changing
    def create_template(self, spec: TemplateSpec) -> Template:
        body = {
            "name": spec.name,
            "image": spec.image,
            "disk": spec.container_disk_gb,
            "env": dict(spec.env),
            "args": spec.docker_args,
            "ports": [],
            "readme": spec.readme,
            "isServerless": True,
        }
        answer = self._call(
            "POST", "templates", body=body, what=f"create template {spec.name}", idempotent=False
        )
        return _template(answer)

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint:
        gpu: dict[str, Any] = {
            "pools": list(spec.gpu_pools),
            "excludedTypes": list(spec.excluded_gpu_types),
            "count": spec.gpu_count,
        }
        if spec.allowed_cuda_versions:
            gpu["allowedCudaVersions"] = list(spec.allowed_cuda_versions)
        scaling = (
            {"type": "QUEUE_DELAY", "queueDelay": spec.scaler_value}
            if spec.scaler_type == "QUEUE_DELAY"
            else {"type": "REQUEST_COUNT", "requestCount": spec.scaler_value}
        )
        body = {
            "name": spec.name,
            "type": "QUEUE",
            "templateId": spec.template_id,
            "gpu": gpu,
            "scaling": scaling,
            "workers": {"min": spec.workers_min, "max": spec.workers_max, "idleTimeout": spec.idle_timeout_s},
            "flashboot": spec.flashboot,
            "timeout": spec.execution_timeout_s * 1000,
        }
        answer = self._call(
            "POST", "serverless", body=body, what=f"create endpoint {spec.name}", idempotent=False
        )
        return _endpoint(answer)

    def scale_endpoint(self, endpoint: Endpoint, *, workers_min: int, workers_max: int) -> Endpoint:
        workers: dict[str, Any] = {"min": workers_min, "max": workers_max}
        if endpoint.idle_timeout_s is not None:
            workers["idleTimeout"] = endpoint.idle_timeout_s
        # Only `workers` is patched: a PATCH that sent `gpu.pools` alone would clear the exclusions.
        answer = self._call(
            "PATCH",
            f"serverless/{endpoint.id}",
            body={"workers": workers},
            what=f"scale endpoint {endpoint.id}",
        )
        return _endpoint(answer)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._call("DELETE", f"serverless/{endpoint_id}", what=f"delete endpoint {endpoint_id}")

    def delete_template(self, template: Template) -> None:
        self._call("DELETE", f"templates/{template.id}", what=f"delete template {template.name}")

    # ------------------------------------------------------------------ transport
    def _call(self, method: str, path: str, *, what: str, body: Any = None, idempotent: bool = True) -> Any:
        try:
            return self._http.request(method, path, body=body, idempotent=idempotent, what=what)
        except (AuthenticationError, RateLimitedError, ServerError, NotFoundError):
            raise
        except APIError as exc:
            # A server may quote the request back, key included; the message is shown as it is.
            text = self._http.settings.redact(_problem_text(exc.body) or str(exc))
            raise ProvisioningError(f"{what}: {text}", status_code=exc.status_code, body=exc.body) from None


def _problem_text(body: Any) -> str:
    """An RFC 9457 problem document as one line: the detail (or title), then each field error."""
    if not isinstance(body, dict):
        return ""
    text = str(body.get("detail") or body.get("title") or body.get("message") or body.get("error") or "")
    details = [
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message", e))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return "; ".join([text, *details] if text else details)


def _items(answer: Any, key: str) -> list[dict[str, Any]]:
    """A list answer, wrapped (`{"endpoints": [...]}`, as documented) or bare."""
    items = answer.get(key) if isinstance(answer, dict) else answer
    return [item for item in items or [] if isinstance(item, dict)]


def _template(raw: dict[str, Any]) -> Template:
    env = raw.get("env") or {}
    if isinstance(env, list):  # the GraphQL/v1 key-value list shape
        env = {e.get("key"): e.get("value") or "" for e in env if isinstance(e, dict) and e.get("key")}
    return Template(
        id=raw["id"],
        name=raw.get("name") or "",
        image=raw.get("image") or raw.get("imageName") or "",
        container_disk_gb=raw.get("disk", raw.get("containerDiskInGb")),
        env={str(k): str(v) for k, v in env.items()},
        is_serverless=bool(raw.get("isServerless", True)),
    )


def _endpoint(raw: dict[str, Any]) -> Endpoint:
    gpu = raw.get("gpu") or {}
    workers = raw.get("workers") or {}
    pools = list(gpu.get("pools") or [])
    excluded = [f"-{gpu_type}" for gpu_type in gpu.get("excludedTypes") or []]
    timeout_ms = raw.get("timeout")
    return Endpoint(
        id=raw["id"],
        name=raw.get("name") or "",
        template_id=raw.get("templateId"),
        gpu_ids=",".join(pools + excluded),
        workers_min=int(workers.get("min") or 0),
        workers_max=int(workers.get("max") or 0),
        idle_timeout_s=workers.get("idleTimeout"),
        flashboot=raw.get("flashboot"),
        execution_timeout_s=timeout_ms / 1000 if timeout_ms is not None else None,
        gpu_count=gpu.get("count"),
    )
