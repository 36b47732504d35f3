"""JobsClient against the local endpoint over real HTTP: every operation, and every error path."""

from __future__ import annotations

import json
import time

import pytest

from rp_notebook.client import JobsClient
from rp_notebook.config import configure, current_settings
from rp_notebook.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PayloadTooLargeError,
    TransportError,
)


@pytest.fixture
def client(use_local):
    with JobsClient(current_settings()) as client:
        yield client


def wait_status(client, job_id, wanted, endpoint="echo", timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.status(endpoint, job_id)
        if body["status"] in wanted:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}; last {body}")


def test_run_then_status_sync_returns_the_completed_body_with_timings(client):
    queued = client.run("echo", {"say": "hi"})
    assert queued["status"] == "IN_QUEUE" and queued["id"]
    body = client.status_sync("echo", queued["id"], wait_ms=60_000)
    assert body["status"] == "COMPLETED"
    assert body["output"]["echo"] == {"say": "hi"}
    assert body["workerId"] and isinstance(body["delayTime"], int) and isinstance(body["executionTime"], int)
    assert client.status("echo", queued["id"]) == body


def test_runsync_returns_the_output_in_one_call(client):
    sent_before = client.http.requests_sent
    body = client.runsync("echo", {"n": 1}, wait_ms=60_000)
    assert body["status"] == "COMPLETED" and body["output"]["echo"] == {"n": 1}
    assert client.http.requests_sent == sent_before + 1


def test_status_sync_returns_a_non_final_body_when_its_wait_ends_first(client, release):
    job = client.run("echo", {"wait_for_file": str(release)})
    body = client.status_sync("echo", job["id"], wait_ms=1_000)
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    release.touch()
    assert client.status_sync("echo", job["id"], wait_ms=60_000)["status"] == "COMPLETED"


def test_cancel_of_a_queued_job_means_it_never_runs(client, release, tmp_path):
    blocker = client.run("echo", {"wait_for_file": str(release)})
    wait_status(client, blocker["id"], {"IN_PROGRESS"})
    marker = tmp_path / "queued-marker"
    queued = client.run("echo", {"marker": str(marker)})
    assert client.cancel("echo", queued["id"])["status"] == "CANCELLED"
    release.touch()
    assert client.status_sync("echo", blocker["id"], wait_ms=60_000)["status"] == "COMPLETED"
    assert client.status("echo", queued["id"])["status"] == "CANCELLED"
    assert not marker.exists()


def test_failed_job_can_be_retried_under_the_same_id(client, tmp_path):
    gate = tmp_path / "gate"
    job = client.run("echo", {"fail_unless_file": str(gate)})
    failed = client.status_sync("echo", job["id"], wait_ms=60_000)
    assert failed["status"] == "FAILED"
    assert json.loads(failed["error"])["error_message"] == "the file is not there yet"
    gate.touch()
    assert client.retry("echo", job["id"])["status"] == "IN_QUEUE"
    done = client.status_sync("echo", job["id"], wait_ms=60_000)
    assert done["status"] == "COMPLETED" and done["id"] == job["id"]


def test_purge_queue_removes_queued_jobs_and_health_counts_them(client, release):
    blocker = client.run("echo", {"wait_for_file": str(release)})
    wait_status(client, blocker["id"], {"IN_PROGRESS"})
    queued = [client.run("echo", {"i": i})["id"] for i in range(3)]
    health = client.health("echo")
    assert health["jobs"]["inQueue"] == 3 and health["jobs"]["inProgress"] == 1
    assert health["workers"]["running"] == 1
    assert client.purge_queue("echo") == {"removed": 3, "status": "completed"}
    release.touch()
    assert client.status_sync("echo", blocker["id"], wait_ms=60_000)["status"] == "COMPLETED"
    for job_id in queued:
        assert client.status("echo", job_id)["status"] == "CANCELLED"


def test_a_wrong_key_is_an_authentication_error_that_does_not_show_the_key(use_local):
    wrong = "fake_WRONGWRONGWRONG_1234567890"
    settings = configure(api_key=wrong)
    with JobsClient(settings) as client, pytest.raises(AuthenticationError) as caught:
        client.run("echo", {})
    assert caught.value.status_code == 401 and wrong not in str(caught.value)


def test_unknown_endpoint_and_unknown_job_are_not_found(client):
    with pytest.raises(NotFoundError):
        client.run("no-such-endpoint", {"x": 1})
    with pytest.raises(NotFoundError):
        client.status("echo", "no-such-job")


def test_no_key_is_a_configuration_error_before_any_request():
    with pytest.raises(ConfigurationError, match="RUNPOD_API_KEY"):
        JobsClient(current_settings()).run("echo", {})


def test_an_oversized_run_is_refused_client_side(client):
    sent_before = client.http.requests_sent
    with pytest.raises(PayloadTooLargeError, match="accepts at most 10 MB"):
        client.run("echo", {"blob": "x" * (11 * 1024 * 1024)})
    assert client.http.requests_sent == sent_before


def test_an_unreachable_server_is_a_transport_error_after_retries():
    settings = configure(api_key="k", endpoint_base_url="http://127.0.0.1:9/v2")
    client = JobsClient(settings)
    client.http._sleep = lambda seconds: None
    with pytest.raises(TransportError, match="could not reach") as caught:
        client.run("echo", {})
    assert caught.value.maybe_delivered is False
    assert client.http.requests_sent == client.http.retry.attempts


@pytest.mark.timeout(120)
def test_without_status_sync_the_client_falls_back_to_polling_status():
    from rp_notebook.jobs import JobManager
    from rp_notebook.local import LocalEndpoint

    with LocalEndpoint(port=0, status_sync=False) as bare:
        settings = configure(api_key=bare.api_key, endpoint_base_url=bare.job_api_url)
        manager = JobManager()
        try:
            job = manager.submit("local-tts", {"text": "Polled the old way."}, model="tts", settings=settings)
            assert job.result(timeout=90).duration > 0.5
            asked = bare.rate_limit_stats("local-tts").accepted
            assert asked.get("status", 0) >= 1  # status-sync answered 404 once; plain status from then on
        finally:
            manager.close()
