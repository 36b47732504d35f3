"""The client-facing job API of the local endpoint, against real runpod SDK worker processes."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from local_helpers import Api, wait_until

from rp_notebook.local import LocalEndpoint

pytestmark = pytest.mark.timeout(90)


def test_run_then_status_completes_with_timings_and_worker_id(api: Api, server: LocalEndpoint) -> None:
    job_id = api.run("echo", {"hello": "wörld ☃", "env": ["ECHO_FLAVOR", "RUNPOD_ENDPOINT_ID"]})
    body = api.wait_final("echo", job_id)
    assert body["status"] == "COMPLETED"
    assert body["id"] == job_id
    assert isinstance(body["delayTime"], int) and body["delayTime"] >= 0
    assert isinstance(body["executionTime"], int) and body["executionTime"] >= 0
    assert body["workerId"] == body["output"]["worker_id"]
    assert body["output"]["echo"]["hello"] == "wörld ☃"
    assert body["output"]["env"] == {"ECHO_FLAVOR": "vanilla", "RUNPOD_ENDPOINT_ID": "echo"}
    assert "error" not in body
    assert api.status("echo", job_id) == body
    worker = next(w for w in server.workers("echo") if w.id == body["workerId"])
    assert worker.cold_start_s is not None and worker.cold_start_s > 0
    assert worker.log_path is not None and worker.log_path.is_file()


def test_runsync_returns_the_final_body(api: Api) -> None:
    response = api.post("echo/runsync", json={"input": {"n": 1}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert body["id"].startswith("sync-")
    assert body["output"]["echo"] == {"n": 1}
    assert {"delayTime", "executionTime", "workerId"} <= body.keys()


def test_runsync_short_wait_returns_non_final_body_then_status_completes(api: Api) -> None:
    gate = api.gate()
    response = api.post("echo/runsync?wait=1000", json={"input": {"wait_for_file": str(gate)}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert body["id"].startswith("sync-")
    api.started.append(("echo", body["id"]))
    api.release(gate)
    final = api.wait_final("echo", body["id"])
    assert final["status"] == "COMPLETED"


def test_status_sync_long_poll_returns_on_completion(api: Api) -> None:
    gate = api.gate()
    job_id = api.run("echo", {"wait_for_file": str(gate)})
    api.wait_status("echo", job_id, "IN_PROGRESS")
    result: dict[str, object] = {}

    def long_poll() -> None:
        result["body"] = api.get(f"echo/status-sync/{job_id}?wait=90000").json()

    poller = threading.Thread(target=long_poll)
    poller.start()
    poller.join(0.3)
    assert poller.is_alive(), "status-sync must hold while the job runs"
    api.release(gate)
    poller.join(60)
    assert not poller.is_alive()
    assert result["body"]["status"] == "COMPLETED"  # type: ignore[index]


def test_stream_chunks_are_consumed_by_reading(api: Api) -> None:
    gate = api.gate()
    job_id = api.run("stream", {"chunks": ["a", "b", "c"], "wait_after_first": str(gate)})
    seen: list[object] = []

    def first_chunk() -> bool:
        body = api.get(f"stream/stream/{job_id}").json()
        seen.extend(chunk["output"] for chunk in body["stream"])
        return bool(seen)

    wait_until(first_chunk)
    assert seen == ["a"]
    assert api.status("stream", job_id)["status"] == "IN_PROGRESS"
    api.release(gate)
    final = api.wait_final("stream", job_id)
    assert final["status"] == "COMPLETED"
    assert final["output"] == ["a", "b", "c"]  # return_aggregate_stream
    rest = api.get(f"stream/stream/{job_id}").json()
    assert rest["status"] == "COMPLETED"
    assert [chunk["output"] for chunk in rest["stream"]] == ["b", "c"]
    again = api.get(f"stream/stream/{job_id}").json()
    assert again == {"status": "COMPLETED", "stream": []}


def test_generator_error_fails_the_job(api: Api) -> None:
    job_id = api.run("stream", {"chunks": ["a", "b"], "fail_after": 1})
    final = api.wait_final("stream", job_id)
    assert final["status"] == "FAILED"
    assert "stream broke" in final["error"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "wrong"}, {"Authorization": "Bearer "}],
    ids=["missing", "wrong-bearer", "wrong-bare", "empty"],
)
def test_missing_or_wrong_api_key_is_401(server: LocalEndpoint, headers: dict[str, str]) -> None:
    for method, path in [("post", "echo/run"), ("get", "echo/health"), ("get", "nope/status/x")]:
        url = f"{server.job_api_url}/{path}"
        response = requests.request(method, url, headers=headers, json={"input": {}}, timeout=30)
        assert response.status_code == 401
        assert "API key" in response.json()["error"]


def test_bare_api_key_is_accepted(server: LocalEndpoint) -> None:
    headers = {"Authorization": server.api_key}
    response = requests.get(f"{server.job_api_url}/echo/health", headers=headers, timeout=30)
    assert response.status_code == 200


def test_unknown_endpoint_is_404(api: Api) -> None:
    response = api.post("no-such-endpoint/run", json={"input": {}})
    assert response.status_code == 404
    assert "no-such-endpoint" in response.json()["error"]


def test_unknown_job_is_404(api: Api) -> None:
    for method, path in [
        ("get", "status/nope"),
        ("get", "status-sync/nope"),
        ("get", "stream/nope"),
        ("post", "cancel/nope"),
        ("post", "retry/nope"),
    ]:
        response = getattr(api, method)(f"echo/{path}")
        assert response.status_code == 404, path
        assert "nope" in response.json()["error"]


def test_unknown_route_is_json_404(api: Api) -> None:
    response = api.get("echo/no-such-op")
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"inputs": {}}', "'input'"),
        ('{"input": null}', "'input'"),
        ('{"input": {}, "policy": {"executionTimeout": -1}}', "executionTimeout"),
        ('{"input": {}, "webhook": "ftp://x"}', "webhook"),
    ],
)
def test_bad_body_is_400(api: Api, data: str, message: str) -> None:
    for op in ("run", "runsync"):
        response = api.post(f"echo/{op}", data=data, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert message in response.json()["error"]


def test_bad_wait_parameter_is_400(api: Api) -> None:
    response = api.post("echo/runsync?wait=soon", json={"input": {}})
    assert response.status_code == 400
    assert "wait" in response.json()["error"]


def test_oversized_bodies_are_413(api: Api) -> None:
    big = json.dumps({"input": {"blob": "x" * (10 * 1024 * 1024)}})
    response = api.post("echo/run", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "10 MB" in response.json()["error"]
    bigger = json.dumps({"input": {"blob": "x" * (20 * 1024 * 1024)}})
    response = api.post("echo/runsync", data=bigger, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "20 MB" in response.json()["error"]
    assert api.get("echo/health").json()["jobs"]["inQueue"] == 0


def test_cancel_queued_job(api: Api) -> None:
    gate = api.gate()
    blocker = api.run("echo", {"wait_for_file": str(gate)})
    api.wait_status("echo", blocker, "IN_PROGRESS")
    queued = api.run("echo", {"never": "runs"})
    response = api.post(f"echo/cancel/{queued}")
    assert response.status_code == 200
    assert response.json() == {"id": queued, "status": "CANCELLED"}
    api.release(gate)
    assert api.wait_final("echo", blocker)["status"] == "COMPLETED"
    body = api.status("echo", queued)
    assert body["status"] == "CANCELLED"
    assert "workerId" not in body


def test_cancel_running_job_reaches_the_handler(api: Api, server: LocalEndpoint) -> None:
    marker = api.tmp_path / "marker"
    job_id = api.run("echo", {"marker": str(marker), "wait_for_file": str(api.gate())})
    wait_until(lambda: marker.exists() and "started" in marker.read_text())
    running = api.status("echo", job_id)
    assert running["status"] == "IN_PROGRESS"
    assert api.post(f"echo/cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}
    wait_until(lambda: "cancelled" in marker.read_text())  # the handler's task got CancelledError
    follow_up = api.wait_final("echo", api.run("echo", {"after": "cancel"}))
    assert follow_up["status"] == "COMPLETED"
    assert follow_up["workerId"] == running["workerId"]  # the same single worker is free again
    info = server.job("echo", job_id)
    assert info is not None
    assert info.status == "CANCELLED"
    assert not info.late_result_received
    assert api.status("echo", job_id)["status"] == "CANCELLED"


def test_late_result_of_a_handler_that_ignores_cancel_is_ignored_and_counted(
    api: Api, server: LocalEndpoint
) -> None:
    marker = api.tmp_path / "marker"
    job_id = api.run("echo", {"marker": str(marker), "wait_for_file": str(api.gate()), "ignore_cancel": True})
    wait_until(lambda: marker.exists() and "started" in marker.read_text())
    api.post(f"echo/cancel/{job_id}")
    wait_until(lambda: (info := server.job("echo", job_id)) and info.late_result_received)
    body = api.status("echo", job_id)
    assert body["status"] == "CANCELLED"
    assert "output" not in body


def test_execution_timeout_times_out_and_stops_the_handler(api: Api) -> None:
    marker = api.tmp_path / "marker"
    job_id = api.run(
        "echo",
        {"marker": str(marker), "wait_for_file": str(api.gate())},
        policy={"executionTimeout": 5000},  # Runpod's minimum
    )
    body = api.wait_final("echo", job_id)
    assert body["status"] == "TIMED_OUT"
    assert "5000 ms" in body["error"]
    wait_until(lambda: "cancelled" in marker.read_text())


def test_retry_of_a_failed_job_completes_on_retry(api: Api) -> None:
    flag = api.tmp_path / "flag"
    job_id = api.run("echo", {"fail_unless_file": str(flag)})
    failed = api.wait_final("echo", job_id)
    assert failed["status"] == "FAILED"
    flag.touch()
    retried_before = api.get("echo/health").json()["jobs"]["retried"]
    response = api.post(f"echo/retry/{job_id}")
    assert response.status_code == 200
    assert response.json() == {"id": job_id, "status": "IN_QUEUE"}
    done = api.wait_final("echo", job_id)
    assert done["status"] == "COMPLETED"
    assert "error" not in done
    assert done["output"]["echo"] == {"fail_unless_file": str(flag)}  # the original input
    assert api.get("echo/health").json()["jobs"]["retried"] == retried_before + 1


def test_retry_of_a_completed_job_is_refused(api: Api) -> None:
    job_id = api.run("echo", {"ok": True})
    assert api.wait_final("echo", job_id)["status"] == "COMPLETED"
    response = api.post(f"echo/retry/{job_id}")
    assert response.status_code == 400
    assert "only FAILED or TIMED_OUT" in response.json()["error"]
    assert api.status("echo", job_id)["status"] == "COMPLETED"


def test_handler_exception_fails_with_the_sdk_json_error_string(api: Api) -> None:
    body = api.wait_final("echo", api.run("echo", {"raise": "boom"}))
    assert body["status"] == "FAILED"
    assert isinstance(body["error"], str)
    error = json.loads(body["error"])
    assert error["error_type"] == "<class 'RuntimeError'>"
    assert error["error_message"] == "boom"
    assert error["worker_id"] == body["workerId"]
    assert error["runpod_version"] == "1.12.0"
    assert "output" not in body


def test_returned_error_fails_the_job_with_that_error(api: Api) -> None:
    body = api.wait_final("echo", api.run("echo", {"error": "bad voice"}))
    assert body["status"] == "FAILED"
    assert body["error"] == "bad voice"


def test_progress_update_is_visible_while_in_progress(api: Api) -> None:
    gate = api.gate()
    job_id = api.run("echo", {"progress": [{"percent": 50}], "wait_for_file": str(gate)})
    body = wait_until(lambda: (b := api.status("echo", job_id)).get("output") and b)
    assert body["status"] == "IN_PROGRESS"
    assert body["output"] == {"percent": 50}
    api.release(gate)
    final = api.wait_final("echo", job_id)
    assert final["status"] == "COMPLETED"
    assert "echo" in final["output"]  # the final output replaced the progress value


def test_purge_queue_removes_only_queued_jobs(api: Api) -> None:
    gate = api.gate()
    running = api.run("echo", {"wait_for_file": str(gate)})
    api.wait_status("echo", running, "IN_PROGRESS")
    queued = [api.run("echo", {"i": i}) for i in range(2)]
    response = api.post("echo/purge-queue")
    assert response.status_code == 200
    assert response.json() == {"removed": 2, "status": "completed"}
    assert api.status("echo", running)["status"] == "IN_PROGRESS"
    assert [api.status("echo", job_id)["status"] for job_id in queued] == ["CANCELLED", "CANCELLED"]
    api.release(gate)
    assert api.wait_final("echo", running)["status"] == "COMPLETED"


def test_health_counts(api: Api) -> None:
    before = api.get("echo/health").json()
    assert set(before) == {"jobs", "workers"}
    assert set(before["jobs"]) == {"completed", "failed", "inProgress", "inQueue", "retried"}
    assert set(before["workers"]) == {"idle", "running", "initializing", "unhealthy"}
    api.wait_final("echo", api.run("echo", {"ok": 1}))
    api.wait_final("echo", api.run("echo", {"raise": "x"}))
    gate = api.gate()
    running = api.run("echo", {"wait_for_file": str(gate)})
    api.wait_status("echo", running, "IN_PROGRESS")
    queued = api.run("echo", {"ok": 2})
    during = api.get("echo/health").json()
    assert during["jobs"]["completed"] == before["jobs"]["completed"] + 1
    assert during["jobs"]["failed"] == before["jobs"]["failed"] + 1
    assert during["jobs"]["inProgress"] == 1
    assert during["jobs"]["inQueue"] == 1
    assert during["workers"] == {"idle": 0, "running": 1, "initializing": 0, "unhealthy": 0}
    api.release(gate)
    api.wait_final("echo", queued)
    after = wait_until(lambda: (h := api.get("echo/health").json())["workers"]["idle"] == 1 and h)
    assert after["jobs"]["inProgress"] == 0 and after["jobs"]["inQueue"] == 0
    assert after["jobs"]["completed"] == before["jobs"]["completed"] + 3


def test_workers_max_1_runs_one_job_at_a_time(api: Api) -> None:
    first_gate, second_gate = api.gate(), api.gate()
    first = api.run("echo", {"wait_for_file": str(first_gate)})
    second = api.run("echo", {"wait_for_file": str(second_gate)})
    api.wait_status("echo", first, "IN_PROGRESS")
    assert api.status("echo", second)["status"] == "IN_QUEUE"
    api.release(second_gate)  # even free to finish, the second job waits for the single worker
    assert api.status("echo", second)["status"] == "IN_QUEUE"
    api.release(first_gate)
    first_body, second_body = api.wait_final("echo", first), api.wait_final("echo", second)
    assert first_body["status"] == second_body["status"] == "COMPLETED"
    assert first_body["workerId"] == second_body["workerId"]


def test_webhook_receives_the_final_body(api: Api) -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, object]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        job_id = api.run("echo", {"hook": 1}, webhook=f"http://127.0.0.1:{httpd.server_port}/hook")
        final = api.wait_final("echo", job_id)
        wait_until(lambda: received)
        assert received[0] == final
    finally:
        httpd.shutdown()
        httpd.server_close()
