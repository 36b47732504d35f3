"""Helpers for the management API tests: a plain-HTTP client for GraphQL and REST v2."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from rp_notebook.local import LocalEndpoint


def unique(name: str) -> str:
    """A name no other test uses on the shared server (template names must be unique)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Management:
    """GraphQL and REST v2 over real HTTP with the server's key; nothing raises on an error status."""

    def __init__(self, server: LocalEndpoint) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.api_key}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> requests.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return self.session.post(f"{self.server.management_url}/graphql", json=body, timeout=30)

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a query that must succeed."""
        response = self.graphql(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def error(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """The message of a query that must be refused by a business rule (HTTP 200, data null)."""
        response = self.graphql(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["errors"]) == 1, body
        field = body["errors"][0]["path"][0]
        assert body["data"] == {field: None}, body
        return body["errors"][0]["message"]

    def rest(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, f"{self.server.management_url}/v2/{path}", json=body, timeout=30)

    # ------------------------------------------------------------------ GraphQL shortcuts
    def save_template(self, **fields: Any) -> dict[str, Any]:
        template = {"containerDiskInGb": 5, "volumeInGb": 0, "env": [], "isServerless": True, **fields}
        return self.data(
            "mutation T($input: SaveTemplateInput) { saveTemplate(input: $input) { id name imageName } }",
            {"input": template},
        )["saveTemplate"]

    def save_endpoint(self, **fields: Any) -> dict[str, Any]:
        return self.data(SAVE_ENDPOINT, {"input": {"gpuIds": "ADA_24", **fields}})["saveEndpoint"]


SAVE_ENDPOINT = (
    "mutation E($input: EndpointInput!) { saveEndpoint(input: $input) "
    "{ id name templateId gpuIds workersMin workersMax idleTimeout executionTimeoutMs } }"
)
