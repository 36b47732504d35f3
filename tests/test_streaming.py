"""TTS streaming on the client: parts from /stream feed the player before the job ends."""

from __future__ import annotations

import base64
import time

import pytest
from helpers import wav_bytes

from rp_notebook import AudioResult
from rp_notebook.jobs import JobManager
from rp_notebook.views import StreamingAudioPlayer

SENTENCES = [f"This is sentence number {i}, spoken while the next one is being made." for i in range(20)]


def test_player_parts_are_synced_as_binary_and_a_new_part_is_a_new_list():
    player = StreamingAudioPlayer()
    seen = []
    player.observe(lambda change: seen.append(len(change["new"])), names="parts")
    player.add_part(wav_bytes(), total=3)
    player.add_part(wav_bytes(), total=3)
    assert seen == [1, 2] and player.total == 3
    state = player.get_state()
    assert all(isinstance(part, bytes | memoryview) for part in state["parts"])


def test_an_aggregated_streaming_output_decodes_to_its_final_whole_file():
    part = {
        "audio": base64.b64encode(wav_bytes(0.1)).decode(),
        "format": "wav",
        "sample_rate": 8000,
        "duration": 0.1,
    }
    whole = {**part, "duration": 0.3, "final": True, "engine": "piper", "chunks": 2, "warnings": []}
    result = AudioResult.from_output([{**part, "chunk": 1}, {**part, "chunk": 2}, whole], "job")
    assert result.duration == 0.3 and result.engine == "piper"


@pytest.fixture
def manager(use_local):
    manager = JobManager()
    yield manager
    manager.close()


@pytest.mark.timeout(120)
def test_parts_of_a_long_text_arrive_before_the_job_ends(manager):
    from rp_notebook._api import prepare_input
    from rp_notebook.models import TTS

    text = " ".join(SENTENCES)
    job = manager.submit("local-tts", prepare_input(TTS, {"text": text}), model="tts")
    assert job.streams
    deadline = time.monotonic() + 90
    while not job.parts:
        assert time.monotonic() < deadline, "no part arrived"
        assert not job.done(), "the job ended before any part was seen"
        time.sleep(0.02)
    assert not job.done()  # playback can start while the rest is generated
    first = job.parts[0]
    assert first["chunk"] == 1 and first["chunks"] > 2
    result = job.result(timeout=90)
    assert len(job.parts) == first["chunks"]
    assert result.duration > sum(part["duration"] for part in job.parts)
