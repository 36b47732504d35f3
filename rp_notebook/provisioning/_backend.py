"""The one interface both management APIs implement (GraphQL in `_graphql.py`, REST v2 in `_rest.py`).

Why two: Runpod's GraphQL API is the one the runpod SDK and most tools use today, and it retires
in early 2027; REST v2 is its successor (shared/docs/runpod-platform.md §2, §7.2). GraphQL stays the
default until then; RP_NOTEBOOK_MANAGEMENT_API=rest (or `Provisioner(api="rest")`) switches.

A backend only translates: it sends what it is given and raises `ProvisioningError` with the
server's message when refused. The rules (unique template names, scale to zero before delete,
GPU memory) are checked once, above the backends, in `Provisioner`.
"""

from __future__ import annotations

from typing import Protocol

from ._types import Endpoint, EndpointSpec, GpuType, Template, TemplateSpec

__all__ = ["ManagementBackend"]


class ManagementBackend(Protocol):
    #: "graphql" or "rest"
    api: str

    def gpu_types(self) -> list[GpuType]: ...

    def templates(self) -> list[Template]: ...

    def endpoints(self) -> list[Endpoint]: ...

    def create_template(self, spec: TemplateSpec) -> Template: ...

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint: ...

    def scale_endpoint(self, endpoint: Endpoint, *, workers_min: int, workers_max: int) -> Endpoint:
        """Change only the worker counts (GraphQL resends the endpoint's required fields with them)."""
        ...

    def delete_endpoint(self, endpoint_id: str) -> None: ...

    def delete_template(self, template: Template) -> None:
        """GraphQL deletes by name, REST v2 by id: the backend picks."""
        ...

    def close(self) -> None: ...
