"""The job ledger on its own: what it stores, what it refuses to store, and sharing between kernels."""

from __future__ import annotations

import base64
import threading

from rp_notebook.jobs._ledger import Ledger, data_dir, safe_parameters


def _submit(ledger: Ledger, job_id: str, **extra):
    ledger.record_submitted(
        job_id=job_id,
        endpoint_id="ep",
        base_url="http://127.0.0.1:1/v2",
        model="tts",
        status="IN_QUEUE",
        parameters=extra.get("parameters", {"text": "hi"}),
    )


def test_a_submitted_job_is_in_flight_until_its_end_is_recorded(tmp_path):
    ledger = Ledger(tmp_path)
    _submit(ledger, "a")
    _submit(ledger, "b")
    assert [e.job_id for e in ledger.in_flight()] == ["a", "b"]
    ledger.record_status(
        job_id="a",
        endpoint_id="ep",
        base_url="http://127.0.0.1:1/v2",
        status="COMPLETED",
        ended=True,
        result_path=tmp_path / "results" / "a" / "a.wav",
    )
    assert [e.job_id for e in ledger.in_flight()] == ["b"]
    (entry,) = ledger.find("a")
    assert entry.status == "COMPLETED" and entry.ended and entry.result_path.endswith("a.wav")
    assert entry.parameters == {"text": "hi"}


def test_the_ledger_survives_reopening_as_after_a_kernel_restart(tmp_path):
    first = Ledger(tmp_path)
    _submit(first, "job-1")
    first.close()
    again = Ledger(tmp_path)
    assert [e.job_id for e in again.in_flight()] == ["job-1"]


def test_media_payloads_are_summarised_and_never_stored_whole(tmp_path):
    clip = base64.b64encode(b"RIFF" + bytes(10_000)).decode()
    safe = safe_parameters(
        {"text": "hello", "voice": clip, "image": b"\x89PNG" * 100, "url": "https://x/y.png"}
    )
    assert safe["text"] == "hello" and safe["url"] == "https://x/y.png"
    assert safe["voice"].startswith("<13,340 characters, sha256 ") and clip not in str(safe)
    assert safe["image"].startswith("<400 bytes")


def test_two_kernels_can_write_the_same_ledger_at_once(tmp_path):
    ledgers = [Ledger(tmp_path), Ledger(tmp_path)]

    def write(index: int) -> None:
        for n in range(50):
            _submit(ledgers[index], f"k{index}-{n}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(Ledger(tmp_path).recent(limit=500)) == 100


def test_the_data_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RP_NOTEBOOK_DATA_DIR", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data"
