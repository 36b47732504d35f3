"""How the job API applies a drawn fault plan (`_faults`) to one request: before the route runs
(a dropped connection, an injected 500 or 429) and after it (a delay, or an answer lost after the
route ran, whose job id is noted when the route created a job)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ._faults import FaultPlan, Faults

__all__ = ["after_route", "before_route"]

#: Operations whose answer carries the id of a job they created.
_CREATING = ("run", "runsync")


async def before_route(request: web.Request, plan: FaultPlan) -> web.StreamResponse | None:
    """Apply the part of `plan` that comes before the route runs; a response ends the request."""
    if plan.kind == "drop_before":
        return _drop(request)
    if plan.kind == "error_500":
        await _delay(plan)
        return web.json_response(
            {"error": f"Internal server error (injected fault on /{plan.operation})"}, status=500
        )
    if plan.kind == "rate_429":
        await _delay(plan)
        response = web.json_response(
            {"error": f"Too many requests (injected fault on /{plan.operation})"}, status=429
        )
        response.headers["Retry-After"] = f"{plan.retry_after_s:g}"
        return response
    return None


async def after_route(
    request: web.Request, plan: FaultPlan, response: web.StreamResponse, faults: Faults
) -> web.StreamResponse:
    """Apply the part of `plan` that comes after the route ran: the delay, or losing the answer."""
    await _delay(plan)
    if plan.kind != "drop_after":
        return response
    if plan.operation in _CREATING and response.status == 200 and isinstance(response, web.Response):
        job_id = _job_id(response)
        if job_id is not None:
            faults.answer_lost(job_id)
    return _drop(request)


async def _delay(plan: FaultPlan) -> None:
    if plan.delay_s:
        await asyncio.sleep(plan.delay_s)


def _drop(request: web.Request) -> web.StreamResponse:
    # Closing the transport loses the answer: the client sees the connection end with no response
    # (RemoteDisconnected). aiohttp writes nothing to a closing transport, so the response returned
    # here only satisfies the handler's signature.
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=503)


def _job_id(response: web.Response) -> str | None:
    body = response.body
    if not isinstance(body, bytes | bytearray):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    job_id = payload.get("id") if isinstance(payload, dict) else None
    return job_id if isinstance(job_id, str) else None
