"""The client-facing job API: Runpod's `/v2/{endpoint_id}/...` routes, same paths and shapes.

    POST /v2/{ep}/run                      {"input":..., "webhook"?, "policy"?, "s3Config"?}
    POST /v2/{ep}/runsync[?wait=ms]        waits 1000-300000 ms (default 90000), id "sync-..."
    GET  /v2/{ep}/status/{id}[?ttl=ms]     ttl: the job is deleted ttl ms from now instead
    GET  /v2/{ep}/status-sync/{id}?wait=ms long-poll, 1000-90000 ms, returns once terminal
    GET  /v2/{ep}/stream/{id}              {"status", "stream": [{"output": chunk}, ...]}, consumed
    POST /v2/{ep}/cancel/{id}              {"id", "status"}
    POST /v2/{ep}/retry/{id}               FAILED / TIMED_OUT only, else 400
    POST /v2/{ep}/purge-queue              {"removed": n, "status": "completed"}
    GET  /v2/{ep}/health                   {"jobs": {...}, "workers": {"idle", "running", "initializing"}}
    GET  /v2/{ep}/requests                 {"requests": [{"id", "status", "delayTime"?, ...}, ...]}

status, status-sync and stream also answer POST (the SDK's local dev server only takes POST there).

Auth is `Authorization: Bearer <key>` or the bare key (Runpod's docs show both): 401 otherwise,
checked before anything else. Then 404 for an unknown endpoint, then Runpod's per-endpoint rate
limits (429 with Retry-After, see `_limits.py`), then 404 for an unknown job. Bodies over 10 MB (run)
or 20 MB (runsync) get 413; malformed JSON or a missing `input` gets 400.

Production's other refusals, so that what works here also works on Runpod:

- `policy.executionTimeout` outside 5 s..7 days and `policy.ttl` outside 10 s..7 days: 400 naming
  the field and the range. `/status?ttl=` has no documented minimum (Runpod's own example sets
  6000 ms), so it only has to be a positive integer of at most 7 days.
- A job that would grow the queue (run, runsync, retry) while it holds max(50, workersMax x 500)
  jobs: 429 naming the cap. Everything else keeps being served.

`lenient_limits` (`LocalEndpoint(lenient_limits=True)`, `rp-notebook local up --lenient`) drops
both: policies then only need positive integers (tests that watch a TTL expire in half a second),
and the queue has no cap. The maximums and everything else stay.

`/requests` is in Runpod's rate-limit table (10 per 10 s, 2 at once) but its answer is not
documented anywhere we found; here it lists every job the endpoint still knows (queued, running,
and finished ones until they expire), oldest first, each as `/status` shows it minus `output` and
`error`, under a `requests` key. Read it leniently.

A job is 404 once it expired: its TTL passed (whatever its state) or its result's retention ended
(see `_state.py`). A status-sync or runsync that was waiting for it answers 404 too.

Injected faults (tests, `_faults.py`) act between the endpoint check and the rate limiter; when none
are set the route checks a single boolean.

One route is not Runpod's, and says so in its path:

    GET  /_local/{ep}/rate-limits          requests let through and refused (429), per operation
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._config import MAX_JOB_TTL_MS
from ._fault_routes import after_route, before_route
from ._http import CONTEXT, json_error, query_ms
from ._records import Job, JobStatus
from ._state import EndpointState, StateError

__all__ = [
    "LENIENT_LIMITS",
    "MAX_EXECUTION_TIMEOUT_MS",
    "MIN_EXECUTION_TIMEOUT_MS",
    "MIN_JOB_TTL_MS",
    "QUEUE_CAP_JOBS_PER_MAX_WORKER",
    "QUEUE_CAP_MIN_JOBS",
    "RUNSYNC_MAX_BYTES",
    "RUN_MAX_BYTES",
    "add_job_routes",
    "queue_cap",
]

RUN_MAX_BYTES = 10 * 1024 * 1024
RUNSYNC_MAX_BYTES = 20 * 1024 * 1024
_MB = 1024 * 1024

# Job policy bounds in ms. runpod/docs serverless/endpoints/send-requests.mdx, "Execution policies":
# executionTimeout "Must be > 5000 ms", ttl "Must be >= 10000 ms, max 1 week";
# serverless/endpoints/endpoint-configurations.mdx: Job TTL "Minimum: 10,000 milliseconds". runpod/docs
# PR #525 rewrites endpoint-configurations.mdx as "The minimum is 5 seconds and maximum is 7 days"
# (execution timeout) and "The minimum is 10 seconds and maximum is 7 days" (TTL), citing the API's
# validation (pkg/job/job.go); shared/docs/runpod-platform.md §1.2 says the same. 5000 ms itself is
# accepted ("minimum"), the one point where the wordings differ.
MIN_EXECUTION_TIMEOUT_MS = 5_000
MAX_EXECUTION_TIMEOUT_MS = 7 * 24 * 3600 * 1000
MIN_JOB_TTL_MS = 10_000  # the maximum is _config.MAX_JOB_TTL_MS (7 days), shared with job_ttl_ms

# runpod/docs serverless/endpoints/send-requests.mdx ("Rate limits and quotas") and
# serverless/endpoints/operations.mdx ("Queue limits"): "429 (Too Many Requests) if queue size
# exceeds 50 jobs AND queue size exceeds endpoint.WorkersMax * 500".
QUEUE_CAP_MIN_JOBS = 50
QUEUE_CAP_JOBS_PER_MAX_WORKER = 500

#: True on a server started with `lenient_limits`: no policy minimums, no queue cap.
LENIENT_LIMITS = web.AppKey("rp_local_lenient_limits", bool)


def queue_cap(workers_max: int) -> int:
    """How many jobs an endpoint's queue may hold before Runpod refuses new ones with 429.

    Runpod refuses once the queue *exceeds* the cap, which would let one more job in; here the
    queue never holds more than the cap, so a client that fits here also fits there whichever
    way Runpod counts."""
    return max(QUEUE_CAP_MIN_JOBS, workers_max * QUEUE_CAP_JOBS_PER_MAX_WORKER)


Handler = Callable[[web.Request, EndpointState], Awaitable[web.StreamResponse]]


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "").strip()
    if header[:7].lower() == "bearer ":
        header = header[7:].strip()
    expected = request.app[CONTEXT].api_key
    return bool(header) and hmac.compare_digest(header.encode(), expected.encode())


def _endpoint_route(
    operation: str, handler: Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Check the API key, resolve the endpoint, apply the rate limits of `operation`, turn
    _ApiError / StateError into JSON errors."""

    async def route(request: web.Request) -> web.StreamResponse:
        context = request.app[CONTEXT]
        if not _authorized(request):
            return json_error(401, "Unauthorized: missing or invalid API key (Authorization: Bearer <key>)")
        endpoint_id = request.match_info["endpoint_id"]
        endpoint = context.endpoints.get(endpoint_id)
        if endpoint is None:
            return json_error(404, f"endpoint {endpoint_id!r} not found")
        plan = context.faults.decide(operation) if context.faults.active else None
        if plan is not None:
            injected = await before_route(request, plan)
            if injected is not None:
                return injected
        retry_after = context.limiter.admit(endpoint_id, operation)
        if retry_after is not None:
            refused = json_error(
                429,
                f"Too many requests: {context.limiter.describe(operation)}; retry after {retry_after:g} s",
            )
            refused.headers["Retry-After"] = f"{retry_after:g}"
            return refused
        if context.network_delay_s:
            await asyncio.sleep(context.network_delay_s / 2)  # the request's way here...
        response: web.StreamResponse
        try:
            response = await handler(request, endpoint)
        except (_ApiError, StateError) as exc:
            response = json_error(exc.status, exc.message)
        finally:
            context.limiter.release(endpoint_id, operation)
        if context.network_delay_s:
            await asyncio.sleep(context.network_delay_s / 2)  # ...and the answer's way back
        if plan is not None:
            response = await after_route(request, plan, response, context.faults)
        return response

    route.__name__ = handler.__name__
    return route


def _job(endpoint: EndpointState, request: web.Request) -> Job:
    job = endpoint.get(request.match_info["job_id"])
    if job is None:
        raise _not_found(endpoint, request.match_info["job_id"])
    return job


def _not_found(endpoint: EndpointState, job_id: str) -> _ApiError:
    return _ApiError(404, f"job {job_id!r} not found on endpoint {endpoint.id!r} (unknown or expired)")


def _still_there(endpoint: EndpointState, job: Job) -> Job:
    """After a wait: the job, unless its TTL deleted it meanwhile (then 404, as /status answers)."""
    if endpoint.get(job.id) is not job:
        raise _not_found(endpoint, job.id)
    return job


def _policy_ms(value: Any, field: str, low: int, high: int) -> int | None:
    """A policy field in ms: None when absent, else an integer in [low, high] (400 naming the field
    and the range otherwise)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise _ApiError(
        400,
        f"'{field}' must be an integer number of ms from {_ms_words(low)} to {_ms_words(high)}, "
        f"got {json.dumps(value)}",
    )


def _ms_words(ms: int) -> str:
    """5000 -> '5000 (5 s)', 604800000 -> '604800000 (7 days)'; the number first, as sent."""
    if ms % 86_400_000 == 0:
        return f"{ms} ({ms // 86_400_000} days)"
    if ms % 1000 == 0:
        return f"{ms} ({ms // 1000} s)"
    return str(ms)


def _check_policy(policy: dict[str, Any], lenient: bool) -> None:
    _policy_ms(
        policy.get("executionTimeout"),
        "policy.executionTimeout",
        1 if lenient else MIN_EXECUTION_TIMEOUT_MS,
        MAX_EXECUTION_TIMEOUT_MS,
    )
    _policy_ms(policy.get("ttl"), "policy.ttl", 1 if lenient else MIN_JOB_TTL_MS, MAX_JOB_TTL_MS)


def _check_queue_room(request: web.Request, endpoint: EndpointState) -> None:
    """429 when one more queued job would take the queue past Runpod's cap (not on lenient servers)."""
    if request.app[LENIENT_LIMITS]:
        return
    workers_max = endpoint.config.workers_max
    cap = queue_cap(workers_max)
    if len(endpoint.queue) >= cap:
        raise _ApiError(
            429,
            f"Too many requests in queue: endpoint {endpoint.id!r} already has {len(endpoint.queue)} jobs "
            f"in queue; Runpod queues at most max({QUEUE_CAP_MIN_JOBS}, workersMax x "
            f"{QUEUE_CAP_JOBS_PER_MAX_WORKER}) = {cap} jobs (workersMax {workers_max}). Submit again "
            "once the queue drains, or raise workersMax",
        )


async def _read_job_request(request: web.Request, limit: int) -> dict[str, Any]:
    """Read and validate a run/runsync body; keeps only the fields Runpod defines."""
    too_large = _ApiError(
        413, f"request body too large: the limit for /{request.path.rsplit('/', 1)[-1]} is {limit // _MB} MB"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large  # aiohttp reads and drops the rest of the body after the response (lingering)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(raw) > limit:
        raise too_large
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _ApiError(400, 'request body must be a JSON object like {"input": {...}}')
    if body.get("input") is None:
        raise _ApiError(400, "request body is missing the required field 'input'")
    job_request: dict[str, Any] = {"input": body["input"]}
    webhook = body.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, str) or not webhook.startswith(("http://", "https://")):
            raise _ApiError(400, "'webhook' must be an http(s) URL")
        job_request["webhook"] = webhook
    policy = body.get("policy")
    if policy is not None:
        if not isinstance(policy, dict):
            raise _ApiError(400, "'policy' must be an object")
        _check_policy(policy, request.app[LENIENT_LIMITS])
        job_request["policy"] = policy
    s3_config = body.get("s3Config")
    if s3_config is not None:
        if not isinstance(s3_config, dict):
            raise _ApiError(400, "'s3Config' must be an object")
        job_request["s3Config"] = s3_config
    return job_request


async def run(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    job_request = await _read_job_request(request, RUN_MAX_BYTES)
    _check_queue_room(request, endpoint)  # after the body: a malformed request is a 400 whatever the queue
    job = endpoint.submit(job_request)
    return web.json_response({"id": job.id, "status": job.status.value})


async def runsync(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    wait_ms = query_ms(request, "wait", 90_000, 1_000, 300_000)
    job_request = await _read_job_request(request, RUNSYNC_MAX_BYTES)
    _check_queue_room(request, endpoint)
    job = endpoint.submit(job_request, sync=True)
    await endpoint.wait_terminal(job, wait_ms / 1000)
    return web.json_response(_still_there(endpoint, job).body())


async def status(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    job = _job(endpoint, request)
    raw_ttl = request.query.get("ttl")
    if raw_ttl is not None:
        try:
            ttl = int(raw_ttl)
        except ValueError:
            ttl = 0
        # No minimum here: Runpod documents none, and its own example (`?ttl=6000`) is under the
        # 10 s that `policy.ttl` needs (serverless/endpoints/operation-reference.mdx, /status).
        if not 0 < ttl <= MAX_JOB_TTL_MS:
            raise _ApiError(
                400,
                f"query parameter 'ttl' must be an integer number of ms from 1 to {_ms_words(MAX_JOB_TTL_MS)}, "
                f"got {raw_ttl!r}",
            )
        endpoint.set_ttl(job, ttl)
    return web.json_response(job.body())


async def status_sync_route(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    job = _job(endpoint, request)
    wait_ms = query_ms(request, "wait", 90_000, 1_000, 90_000)
    await endpoint.wait_terminal(job, wait_ms / 1000)
    return web.json_response(_still_there(endpoint, job).body())


async def stream(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    job = _job(endpoint, request)
    chunks = endpoint.take_stream(job)
    return web.json_response({"status": job.status.value, "stream": [{"output": c} for c in chunks]})


async def cancel(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    job = _job(endpoint, request)
    endpoint.cancel(job)
    return web.json_response({"id": job.id, "status": job.status.value})


async def retry(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    job = _job(endpoint, request)
    if job.status in (JobStatus.FAILED, JobStatus.TIMED_OUT):  # others get retry's own 400
        _check_queue_room(request, endpoint)  # a retried job goes back into the queue like a new one
    endpoint.retry(job)
    return web.json_response({"id": job.id, "status": job.status.value})


async def purge_queue(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    return web.json_response({"removed": endpoint.purge_queue(), "status": "completed"})


async def health(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    return web.json_response(endpoint.health())


async def list_requests(request: web.Request, endpoint: EndpointState) -> web.StreamResponse:
    """Every job the endpoint still knows, oldest first. Without `output` and `error`: a listing
    polled by dashboards stays small however large the results are (`/status` has them)."""
    listed = []
    for job in endpoint.jobs.values():
        body = job.body()
        body.pop("output", None)
        body.pop("error", None)
        listed.append(body)
    return web.json_response({"requests": listed})


async def rate_limit_stats(request: web.Request) -> web.StreamResponse:
    """Local only: the limiter's counts for one endpoint (not counted or limited itself)."""
    if not _authorized(request):
        return json_error(401, "Unauthorized: missing or invalid API key (Authorization: Bearer <key>)")
    context = request.app[CONTEXT]
    endpoint_id = request.match_info["endpoint_id"]
    if endpoint_id not in context.endpoints:
        return json_error(404, f"endpoint {endpoint_id!r} not found")
    return web.json_response(context.limiter.stats(endpoint_id).to_json())


def add_job_routes(app: web.Application, *, status_sync: bool = True, lenient_limits: bool = False) -> None:
    """Register the job API. status_sync=False mimics a server without that (undocumented) route;
    lenient_limits=True accepts policies under Runpod's minimums and queues past its cap."""
    app[LENIENT_LIMITS] = lenient_limits
    prefix = "/v2/{endpoint_id}"
    # The first argument of _endpoint_route names the operation as Runpod's rate-limit table does.
    app.router.add_post(f"{prefix}/run", _endpoint_route("run", run))
    app.router.add_post(f"{prefix}/runsync", _endpoint_route("runsync", runsync))
    for method in ("GET", "POST"):  # GET is what the SDKs send; POST as the local dev server takes it
        app.router.add_route(method, f"{prefix}/status/{{job_id}}", _endpoint_route("status", status))
        if status_sync:
            app.router.add_route(
                method, f"{prefix}/status-sync/{{job_id}}", _endpoint_route("status-sync", status_sync_route)
            )
        app.router.add_route(method, f"{prefix}/stream/{{job_id}}", _endpoint_route("stream", stream))
    app.router.add_post(f"{prefix}/cancel/{{job_id}}", _endpoint_route("cancel", cancel))
    app.router.add_post(f"{prefix}/retry/{{job_id}}", _endpoint_route("retry", retry))
    app.router.add_post(f"{prefix}/purge-queue", _endpoint_route("purge-queue", purge_queue))
    app.router.add_get(f"{prefix}/health", _endpoint_route("health", health))
    app.router.add_get(f"{prefix}/requests", _endpoint_route("requests", list_requests))
    app.router.add_get("/_local/{endpoint_id}/rate-limits", rate_limit_stats)
