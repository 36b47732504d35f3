"""The worker side of Runpod's protocol, as the runpod SDK 1.12.0 worker speaks it.

    GET  /_worker/{ep}/job-take/{worker}?token=..&job_in_progress=0|1
         long-poll (held `job_take_hold_s`, 30 s): 200 {"id","input",...} or 204
    GET  /_worker/{ep}/job-take-batch/{worker}?token=..&batch_size=N&job_in_progress=0|1
         same, 200 [{...}, ...] (workers with a concurrency_modifier > 1)
    GET  /_worker/{ep}/job-stop/{worker}?token=..
         long-poll: 200 {"jobsToStop": [ids]} or 204 (cancel and timeout reach the handler here)
    POST /_worker/{ep}/job-done/{worker}/{job}?token=..&isStream=true|false
         body: a JSON string sent as application/x-www-form-urlencoded:
         {"output": ..} | {"error": ..} (final; "stopPod": true recycles the worker)
         or {"status": "IN_PROGRESS", "output": ..} (a progress_update)
    POST /_worker/{ep}/job-stream/{worker}/{job}?token=..&isStream=false   body {"output": chunk}
    GET  /_worker/{ep}/ping/{worker}?token=..&job_id=..&runpod_version=..[&status=unhealthy..]

The token in the query string is the per-server worker secret (see `_workers.py` for why not the
Authorization header). The SDK builds these URLs from the RUNPOD_WEBHOOK_* variables: it replaces
`$ID`/`$RUNPOD_POD_ID` and appends `&job_in_progress=`, `&isStream=` to the query string we give it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._http import CONTEXT, json_error
from ._state import EndpointState

__all__ = ["add_worker_routes"]

Handler = Callable[[web.Request, EndpointState, str], Awaitable[web.StreamResponse]]


def _worker_route(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        context = request.app[CONTEXT]
        token = request.query.get("token", "")
        if not token or not hmac.compare_digest(token.encode(), context.worker_token.encode()):
            return json_error(401, "invalid worker token")
        endpoint = context.endpoints.get(request.match_info["endpoint_id"])
        if endpoint is None:
            return json_error(404, "unknown endpoint")
        return await handler(request, endpoint, request.match_info["worker_id"])

    route.__name__ = handler.__name__
    return route


def _unknown_worker(worker_id: str) -> web.Response:
    return json_error(404, f"unknown worker {worker_id!r}")


async def _take(
    request: web.Request, endpoint: EndpointState, worker_id: str, batch: bool
) -> web.StreamResponse:
    in_progress = request.query.get("job_in_progress")
    batch_size = 1
    if batch:
        try:
            batch_size = max(1, int(request.query.get("batch_size", "1")))
        except ValueError:
            return json_error(400, "batch_size must be an integer")
    jobs = await endpoint.take_jobs(
        worker_id,
        max_jobs=batch_size,
        job_in_progress=None if in_progress is None else in_progress == "1",
        hold_s=request.app[CONTEXT].job_take_hold_s,
    )
    if jobs is None:
        return _unknown_worker(worker_id)
    if not jobs:
        return web.Response(status=204)
    if batch:
        return web.json_response([job.worker_payload() for job in jobs])
    return web.json_response(jobs[0].worker_payload())


async def job_take(request: web.Request, endpoint: EndpointState, worker_id: str) -> web.StreamResponse:
    return await _take(request, endpoint, worker_id, batch=False)


async def job_take_batch(request: web.Request, endpoint: EndpointState, worker_id: str) -> web.StreamResponse:
    return await _take(request, endpoint, worker_id, batch=True)


async def job_stop(request: web.Request, endpoint: EndpointState, worker_id: str) -> web.StreamResponse:
    job_ids = await endpoint.stop_signals(worker_id, hold_s=request.app[CONTEXT].job_stop_hold_s)
    if job_ids is None:
        return _unknown_worker(worker_id)
    if not job_ids:
        return web.Response(status=204)
    return web.json_response({"jobsToStop": job_ids})


async def _payload(request: web.Request) -> dict[str, Any] | None:
    try:
        payload = json.loads(await request.text())
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


async def job_done(request: web.Request, endpoint: EndpointState, worker_id: str) -> web.StreamResponse:
    payload = await _payload(request)
    if payload is None:
        return json_error(400, "job-done body must be a JSON object")
    is_stream = request.query.get("isStream") == "true"
    if not endpoint.job_result(worker_id, request.match_info["job_id"], payload, is_stream):
        return json_error(404, "unknown job")
    return web.json_response({})


async def job_stream(request: web.Request, endpoint: EndpointState, worker_id: str) -> web.StreamResponse:
    payload = await _payload(request)
    if payload is None:
        return json_error(400, "job-stream body must be a JSON object")
    if not endpoint.job_stream(worker_id, request.match_info["job_id"], payload):
        return json_error(404, "unknown job")
    return web.json_response({})


async def ping(request: web.Request, endpoint: EndpointState, worker_id: str) -> web.StreamResponse:
    if not endpoint.ping(worker_id, dict(request.query)):
        return _unknown_worker(worker_id)
    return web.json_response({})


def add_worker_routes(app: web.Application) -> None:
    prefix = "/_worker/{endpoint_id}"
    app.router.add_get(f"{prefix}/job-take/{{worker_id}}", _worker_route(job_take))
    app.router.add_get(f"{prefix}/job-take-batch/{{worker_id}}", _worker_route(job_take_batch))
    app.router.add_get(f"{prefix}/job-stop/{{worker_id}}", _worker_route(job_stop))
    app.router.add_post(f"{prefix}/job-done/{{worker_id}}/{{job_id}}", _worker_route(job_done))
    app.router.add_post(f"{prefix}/job-stream/{{worker_id}}/{{job_id}}", _worker_route(job_stream))
    app.router.add_get(f"{prefix}/ping/{{worker_id}}", _worker_route(ping))
