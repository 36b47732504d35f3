"""Shared HTTP plumbing of the local endpoint: the app context, JSON errors, the error middleware.

Every error body is JSON `{"error": "..."}`, including aiohttp's own 404/405/413 and unexpected
exceptions (500), so clients can always parse what they get. Nothing here logs request headers or
query strings (the worker routes carry a token in the query string).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..client._budget import RUNPOD_RATE_LIMITS
from ._faults import Faults
from ._limits import EndpointRateLimiter
from ._state import EndpointState

__all__ = ["CONTEXT", "ServerContext", "error_middleware", "json_error", "query_ms"]

log = logging.getLogger("rp_notebook.local")


@dataclass
class ServerContext:
    """What the routes need: the endpoints, the client API key, the worker token, the rate limiter,
    and the injected faults (tests only; inactive unless set)."""

    api_key: str
    worker_token: str
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    limiter: EndpointRateLimiter = field(default_factory=lambda: EndpointRateLimiter(RUNPOD_RATE_LIMITS))
    network_delay_s: float = 0.0  # a simulated round trip on every job-API request (benchmarks)
    job_take_hold_s: float = 30.0  # the SDK gives up on a job-take after 90 s
    job_stop_hold_s: float = 30.0
    faults: Faults = field(default_factory=Faults)


CONTEXT = web.AppKey("rp_local_context", ServerContext)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, f"request body too large: {exc.text or 'over the server limit'}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"no such route: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        else:
            message = exc.reason
        return json_error(exc.status, message)
    except Exception:  # a bug must still answer JSON, and show up in the server log
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal error in the local endpoint (see the server log)")


def query_ms(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer millisecond query parameter, clamped to [low, high]; 400 when not an integer."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        message = f"query parameter {name!r} must be an integer (ms), got {raw!r}"
        raise web.HTTPBadRequest(reason=message) from None
    return max(low, min(high, value))
