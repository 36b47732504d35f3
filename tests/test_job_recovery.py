"""Nothing paid for is lost: every job goes into the ledger, results are saved as they arrive, and a
new manager (a restarted kernel) follows the jobs left in flight or gives back their saved results.
Real jobs on the local endpoint; the kernel-kill test is in test_kernel_recovery.py."""

from __future__ import annotations

import warnings

import pytest
from helpers import eventually

import rp_notebook
from rp_notebook.config import configure
from rp_notebook.errors import InputError, JobFailedError, JobLostError, NotFoundError
from rp_notebook.jobs import JobManager
from rp_notebook.jobs._ledger import Ledger
from rp_notebook.jobs._saved import INLINE_OUTPUT_MAX, load_result, load_saved
from rp_notebook.results import AudioResult, LayersResult


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "data")
    yield ledger
    ledger.close()


@pytest.fixture
def manager(use_local, ledger):
    manager = JobManager(ledger=ledger)
    yield manager
    manager.close()


def test_a_completed_job_is_recorded_and_its_json_output_kept_in_the_ledger_before_result_returns(
    manager, ledger
):
    job = manager.submit("echo", {"n": 1})
    assert [e.status for e in ledger.find(job.id)] in (["IN_QUEUE"], ["IN_PROGRESS"], ["COMPLETED"])
    output = job.result(timeout=60)
    (entry,) = ledger.find(job.id)
    assert entry.status == "COMPLETED" and entry.ended and entry.endpoint_id == "echo"
    assert entry.parameters == {"n": 1}
    assert entry.has_result and entry.result_path is None  # no folder for a JSON output
    assert load_saved(entry.result_path, entry.output) == output
    assert not ledger.result_folder(job.id).exists()


def test_a_json_output_over_the_inline_limit_is_saved_to_a_folder(manager, ledger):
    job = manager.submit("echo", {"text": "x" * (INLINE_OUTPUT_MAX + 10)})
    output = job.result(timeout=60)
    (entry,) = ledger.find(job.id)
    assert entry.output is None and entry.result_path == str(ledger.result_folder(job.id))
    assert load_saved(entry.result_path, entry.output) == output == load_result(entry.result_path)


def test_a_retried_job_forgets_the_result_kept_from_its_first_run_and_an_attached_one_keeps_it(ledger):
    job = {"endpoint_id": "ep", "base_url": "http://x/v2", "model": None, "parameters": {}}
    for job_id in ("retried", "attached"):
        ledger.record_submitted(job_id=job_id, status="IN_QUEUE", **job)
        ledger.record_status(
            job_id=job_id,
            endpoint_id="ep",
            base_url="http://x/v2",
            status="COMPLETED",
            ended=True,
            output="[1]",
        )
    ledger.record_submitted(job_id="retried", status="IN_QUEUE", retried=True, **job)
    ledger.record_submitted(job_id="attached", status="IN_QUEUE", **job)  # followed again from elsewhere
    (retried,) = ledger.find("retried")
    assert not retried.ended and not retried.has_result
    (attached,) = ledger.find("attached")
    assert attached.output == "[1]"


def test_speech_and_layers_are_saved_as_files_and_load_back_as_the_same_results(use_local, ledger, tmp_path):
    from PIL import Image

    manager = JobManager(ledger=ledger)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(photo)
    try:
        speech = manager.submit("local-tts", {"text": "Saved as it arrives."}, model="tts")
        layers = manager.submit(
            "local-layers",
            rp_notebook._api.prepare_input(
                rp_notebook.models.MODELS["layers"], {"image": photo, "layers": 3}
            ),
            model="layers",
        )
        audio, split = speech.result(timeout=120), layers.result(timeout=120)
    finally:
        manager.close()
    saved_audio = load_result(ledger.find(speech.id)[0].result_path)
    assert isinstance(saved_audio, AudioResult) and saved_audio.data == audio.data
    assert (ledger.result_folder(speech.id) / "speech.wav").read_bytes() == audio.data
    saved_layers = load_result(ledger.find(layers.id)[0].result_path)
    assert isinstance(saved_layers, LayersResult) and saved_layers.pngs == split.pngs
    assert sorted(p.name for p in ledger.result_folder(layers.id).glob("layer_*.png")) == split.file_names()


def test_a_failed_job_is_recorded_with_its_error(manager, ledger):
    job = manager.submit("echo", {"raise": "the GPU caught fire"})
    with pytest.raises(JobFailedError):
        job.result(timeout=60)
    (entry,) = ledger.find(job.id)
    assert entry.status == "FAILED" and entry.ended and "the GPU caught fire" in entry.error
    assert entry.result_path is None


def test_a_restarted_manager_follows_jobs_left_in_flight_to_their_end(use_local, ledger, release):
    before = JobManager(ledger=ledger)
    waiting = before.submit("echo", {"wait_for_file": str(release), "n": 2})
    before.close()  # the kernel dies: nobody follows the job any more
    assert [e.job_id for e in ledger.in_flight()] == [waiting.id]
    release.touch()  # the job ends while no kernel is alive

    after = JobManager(ledger=ledger)
    try:
        (job,) = after.recover()
        assert job.id == waiting.id and job is not waiting
        assert job.result(timeout=60)["echo"]["n"] == 2
    finally:
        after.close()
    assert ledger.in_flight() == []
    (entry,) = ledger.find(job.id)
    assert load_saved(entry.result_path, entry.output)["echo"]["n"] == 2


def test_resume_gives_a_saved_result_back_without_a_key_or_a_server(use_local, ledger):
    first = JobManager(ledger=ledger)
    job_id = first.submit("local-tts", {"text": "Kept on disk."}, model="tts").id
    data = first.jobs()[0].result(timeout=120).data
    first.close()

    configure(api_key="", endpoint_base_url="http://127.0.0.1:9/v2")  # no key, nothing listening
    later = JobManager(ledger=ledger)
    job = later.resume(job_id)
    assert job.done() and job.status == "COMPLETED"
    assert isinstance(job.result(), AudioResult) and job.result().data == data
    later.close()


def test_a_job_the_server_no_longer_knows_ends_with_not_found_and_the_ledger_says_so(use_local, ledger):
    ledger.record_submitted(
        job_id="gone-0000",
        endpoint_id="echo",
        base_url=use_local.job_api_url,
        model=None,
        status="IN_PROGRESS",
        parameters={},
    )
    manager = JobManager(ledger=ledger)
    try:
        (job,) = manager.recover()
        with pytest.raises(JobLostError) as lost:
            job.result(timeout=60)
        assert isinstance(lost.value.__cause__, NotFoundError) and lost.value.job_id == "gone-0000"
    finally:
        manager.close()
    (entry,) = ledger.find("gone-0000")
    assert entry.ended and "gone-0000" in entry.error


def test_recover_leaves_jobs_of_another_api_alone(use_local, ledger):
    ledger.record_submitted(
        job_id="elsewhere-1",
        endpoint_id="echo",
        base_url="https://api.runpod.ai/v2",
        model=None,
        status="IN_QUEUE",
        parameters={},
    )
    manager = JobManager(ledger=ledger)
    assert manager.recover() == []
    manager.close()
    assert [e.job_id for e in ledger.in_flight()] == ["elsewhere-1"]


def test_resume_of_an_unknown_job_says_how_to_follow_it(manager):
    with pytest.raises(InputError, match="--endpoint") as caught:
        manager.resume("never-seen")
    assert caught.value.field == "job_id"


def test_a_ledger_that_cannot_be_written_warns_once_and_jobs_go_on(use_local, tmp_path):
    ledger = Ledger(tmp_path / "broken")
    ledger.close()  # every write now raises sqlite3.ProgrammingError
    manager = JobManager(ledger=ledger)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            jobs = [manager.submit("echo", {"n": n}) for n in range(3)]
            assert [job.result(timeout=60)["echo"]["n"] for job in jobs] == [0, 1, 2]
        ledger_warnings = [w for w in caught if "job ledger" in str(w.message)]
        assert len(ledger_warnings) == 1
    finally:
        manager.close()


# ------------------------------------------------------------------------------ the magics


def test_jobs_magic_lists_jobs_of_earlier_sessions_with_their_saved_results(ip, use_local):
    from rp_notebook.jobs import get_manager

    earlier = JobManager()  # an earlier kernel, same user ledger
    old = earlier.submit("echo", {"n": 5})
    old.result(timeout=60)
    earlier.close()

    now = ip.run_line_magic("runpod", "tts 'This session.'")
    now.result(timeout=120)
    table = ip.run_line_magic("runpod", "jobs")._repr_mimebundle_()["text/plain"]
    assert old.id in table and now.id in table
    old_row = next(line for line in table.splitlines() if old.id in line)
    assert "JSON output, in the ledger" in old_row
    now_row = next(line for line in table.splitlines() if now.id in line)
    assert str(get_manager().ledger.result_folder(now.id)) in now_row


def test_attach_magic_shows_a_saved_result_and_follows_a_job_in_flight(ip, use_local, release):
    earlier = JobManager()
    done = earlier.submit("echo", {"n": 1})
    done.result(timeout=60)
    running = earlier.submit("echo", {"wait_for_file": str(release), "n": 2})
    earlier.close()

    shown = ip.run_line_magic("runpod", f"attach {done.id}")
    assert shown.done() and shown.result()["echo"]["n"] == 1
    (followed,) = [j for j in ip.run_line_magic("runpod", "attach --all") if j.id == running.id]
    release.touch()
    eventually(followed.done)
    assert followed.result()["echo"]["n"] == 2


def test_attach_magic_refuses_all_with_a_job_id(ip, use_local):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--all takes no job id"):
        ip.run_line_magic("runpod", "attach some-id --all")


def test_jobs_panel_resumes_jobs_of_an_earlier_session_and_lists_their_saved_results(
    use_local, ledger, release
):
    from rp_notebook.widgets import JobsPanel

    earlier = JobManager(ledger=ledger)
    finished = earlier.submit("echo", {"n": 1})
    finished.result(timeout=60)
    waiting = earlier.submit("echo", {"wait_for_file": str(release), "n": 2})
    earlier.close()

    manager = JobManager(ledger=ledger)
    panel = JobsPanel(manager=manager)
    try:
        assert "2 recent job(s) of earlier sessions, 1 of them with no recorded end" in panel.earlier.value
        assert panel.earlier_bar.layout.display != "none" and not panel.rows
        panel.resume_button.click()
        assert set(panel.rows) == {finished.id, waiting.id}
        assert panel.rows[finished.id].job.result()["echo"]["n"] == 1  # from disk
        release.touch()
        eventually(lambda: panel.rows[waiting.id].job.done())
        assert panel.rows[waiting.id].job.result()["echo"]["n"] == 2
        assert panel.earlier_bar.layout.display == "none"
    finally:
        panel.close()
        manager.close()
