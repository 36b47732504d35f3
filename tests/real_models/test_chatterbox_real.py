"""The real Chatterbox library through the unmodified TTS worker, in its image's own environment.

`workers/chatterbox_tts/handler.py` runs unchanged with TTS_ENGINE=chatterbox, deployed the way a
user deploys an image (`Provisioner().deploy("tts", image="local:<worker folder>", env=...)` over
the local endpoint's GraphQL API), and the jobs go through rp_notebook's own client
(`rp_notebook.tts`). The local endpoint reads the folder's Dockerfile: the worker runs
`python -u handler.py` on the Python of an environment built from the image's pip installs
(requirements.txt with torch 2.6.0, then `--no-deps chatterbox-tts==0.1.7 s3tokenizer==0.3.0
resemble-perth==1.0.1`, then rp_notebook), with the Dockerfile's ENV under the template's.
torch 2.6.0 there is PyPI's CUDA 12.4 build; with no GPU it runs on the CPU
(rp_notebook.worker_runtime.choose_device allows that on the local endpoint, never on Runpod).

What runs for real: the engine's from_local loads of ChatterboxTTS and ChatterboxMultilingualTTS
at full size (T3 with 30 Llama layers, S3Gen, the voice encoder), both tokenizers (the multilingual
one with pkuseg and the Cangjie table), generate() with its T3 sampling loop, S3Gen's flow
matching and the HiFT vocoder, the voice-clone path (`prepare_conditionals`: the S3 tokenizer,
CAMPPlus and the voice encoder on the uploaded clip) and the built-in voice (conds.pt), and the
perth watermarker, which is also what checks the output (PerthImplicitWatermarker.get_watermark,
in the worker environment's Python). Every multilingual job also runs the engine's removal of
the attention hooks generate() leaves behind (chatterbox 0.1.7 leaks three a call); that they are
gone is checked in tests/workers/test_tts_worker.py, with torch's own hooks.

What is random: every weight. tests/workers/tiny_chatterbox.py writes the checkpoint folder with
the library's own classes (random init, seed 0), cached by the writer's hash, plus a tiny pkuseg
model and Cangjie table; a few T3 weights are set so that T3 stops after 8 speech tokens (0.32 s
of audio) instead of running 1000 steps. The speech is noise, of the length those tokens make.

What is stubbed: nothing the engine calls in chatterbox, torch or perth. The full-size T3 is
used, not tiny_chatterbox's --small-t3, because a smaller T3 needs the library's Llama config
table patched in the worker process, which a worker deployed from a template cannot do.

Measured on 2 CPU cores with the environment and the checkpoint cached: the module takes 64-68 s.
The worker takes 26.5 s from its start to its first job (imports, then from_local of both models;
peak RSS 10.6 GB once both are loaded), and a job 6-8.5 s. The first run on a machine took 217 s:
it also builds the environment (3.1 GB of wheels, 6.2 GB installed; 97 s with the wheels already
on disk) and writes the 6 GB checkpoint (about 45 s).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import rp_notebook
from rp_notebook.config import configure
from rp_notebook.errors import JobFailedError
from rp_notebook.jobs import Job
from rp_notebook.local import LocalEndpoint
from rp_notebook.provisioning import Provisioner
from rp_notebook.results import AudioResult

from .conftest import REPO, WORKERS_DIR, checkpoints_dir, run_in, worker_python

# The first run builds a 6 GB environment and writes a 6 GB checkpoint before any job.
pytestmark = pytest.mark.timeout(3600)

TINY_CHATTERBOX = REPO / "tests" / "workers" / "tiny_chatterbox.py"
IMAGE = f"local:{WORKERS_DIR / 'chatterbox_tts'}"
#: A cap per job, far above what a job takes; the tests assert nothing about time.
JOB_TIMEOUT_S = 900
#: Speech tokens T3 emits before the planted stop (tiny_chatterbox's default), and the samples one
#: token becomes at 24 kHz: S3 tokens are 25 Hz, S3Gen makes 2 mel frames of them, HiFT 480 samples
#: of a frame.
SPEECH_TOKENS = 8
SAMPLES_PER_TOKEN = 960
SAMPLE_RATE = 24_000
SEED = 11

PERTH_SCORES = """
import json, sys
import perth, soundfile
marker = perth.PerthImplicitWatermarker()
scores = {}
for path in sys.argv[1:]:
    wav, sr = soundfile.read(path, dtype="float32")
    scores[path] = float(marker.get_watermark(wav, sample_rate=sr))
print(json.dumps(scores))
"""


def use(server: LocalEndpoint) -> None:
    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url, api_base_url=server.url)


def deploy(server: LocalEndpoint, name: str, env: dict[str, str]) -> str:
    """Deploy the worker folder as the `tts` preset with `env`; return the endpoint id."""
    use(server)
    with Provisioner() as provisioner:
        deployment = provisioner.deploy(
            "tts",
            image=IMAGE,
            name=name,
            env=env,
            workers_max=1,
            # Long enough that the loaded worker is still there for every test of the module.
            idle_timeout_s=3600,
        )
    return deployment.endpoint.id


def decode(audio: AudioResult) -> np.ndarray:
    samples, sample_rate = sf.read(io.BytesIO(audio.data), dtype="float32")
    assert sample_rate == audio.sample_rate == SAMPLE_RATE
    return samples


@pytest.fixture(scope="module")
def python() -> str:
    return worker_python("chatterbox_tts")


@pytest.fixture(scope="module")
def checkpoint(python: str) -> Path:
    folder = checkpoints_dir() / "chatterbox"
    run_in(python, str(TINY_CHATTERBOX), str(folder), "--multilingual", "--if-missing", timeout=1800)
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s voice-like clip to clone (flow matching's cost grows with the prompt's length)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_chatterbox", TINY_CHATTERBOX)
    assert spec is not None and spec.loader is not None
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)  # standard library only at import
    path = tmp_path_factory.mktemp("voice") / "voice.wav"
    tiny.voice_clip(path, 1.0, seed=1)  # another voice than the built-in one (seed 0)
    return path


@pytest.fixture(scope="module")
def jobs(server: LocalEndpoint, checkpoint: Path, clip: Path) -> Iterator[dict[str, Job]]:
    """The real worker's jobs, all queued at once so that its one worker runs them back to back."""
    endpoint = deploy(
        server,
        "chatterbox-real",
        {
            "TTS_ENGINE": "chatterbox",
            "TTS_CHECKPOINT_DIR": str(checkpoint),
            # The image sets PKUSEG_HOME=/models/pkuseg, a container path the local endpoint drops.
            "PKUSEG_HOME": str(checkpoint / "pkuseg"),
        },
    )
    queued = {
        "english": rp_notebook.tts("Hello there.", endpoint=endpoint, seed=SEED),
        "french_cloned": rp_notebook.tts(
            "Bonjour à tous.", endpoint=endpoint, language="fr", voice=str(clip), seed=SEED
        ),
        "french_builtin": rp_notebook.tts("Bonjour à tous.", endpoint=endpoint, language="fr", seed=SEED),
    }
    yield queued
    for job in queued.values():
        if not job.done():
            job.cancel()


def result(job: Job) -> AudioResult:
    audio = job.result(timeout=JOB_TIMEOUT_S)
    assert isinstance(audio, AudioResult)
    assert audio.engine == "chatterbox" and audio.warnings == ()
    return audio


def test_english_job_speaks_the_builtin_voice_through_t3_s3gen_and_hift_for_the_planted_eight_tokens(
    jobs: dict[str, Job],
) -> None:
    audio = result(jobs["english"])
    samples = decode(audio)
    # Exactly the speech tokens T3 sampled before its stop token, each turned into 40 ms of audio.
    assert len(samples) == SPEECH_TOKENS * SAMPLES_PER_TOKEN
    assert audio.duration == pytest.approx(len(samples) / SAMPLE_RATE, abs=1e-3)
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0


def test_french_job_with_an_uploaded_clip_runs_the_multilingual_model_in_the_cloned_voice(
    jobs: dict[str, Job],
) -> None:
    cloned = decode(result(jobs["french_cloned"]))
    builtin = decode(result(jobs["french_builtin"]))
    # The multilingual model stops after 8 tokens, or 10 when its alignment analyser held the stop
    # back until a repeated token (tiny_chatterbox's docstring).
    for samples in (cloned, builtin):
        assert len(samples) in (SPEECH_TOKENS * SAMPLES_PER_TOKEN, (SPEECH_TOKENS + 2) * SAMPLES_PER_TOKEN)
        assert np.isfinite(samples).all() and np.abs(samples).max() > 0
    # Same text, language and seed: only the voice differs, so the clip's conditioning was used.
    assert len(cloned) != len(builtin) or not np.allclose(cloned, builtin, atol=1e-4)
    assert jobs["french_cloned"].worker_id == jobs["english"].worker_id  # one worker, both models


def test_every_output_carries_the_perth_watermark_and_the_unmarked_clip_does_not(
    jobs: dict[str, Job], python: str, clip: Path, tmp_path: Path
) -> None:
    paths = {"clip": clip}
    for name, job in jobs.items():
        paths[name] = result(job).save(tmp_path / f"{name}.wav")
    done = run_in(python, "-c", PERTH_SCORES, *map(str, paths.values()), timeout=600)
    scores: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    by_name = {name: scores[str(path)] for name, path in paths.items()}
    assert by_name["clip"] < 0.5, by_name
    assert all(by_name[name] > 0.9 for name in jobs), by_name


def test_a_checkpoint_missing_a_file_fails_every_job_naming_it_and_the_worker_stays_up(
    server: LocalEndpoint, checkpoint: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "checkpoint"
    broken.mkdir()
    for entry in checkpoint.iterdir():
        if entry.name != "s3gen.pt":
            (broken / entry.name).symlink_to(entry)
    endpoint = deploy(
        server,
        "chatterbox-missing-file",
        {
            "TTS_ENGINE": "chatterbox",
            "TTS_CHECKPOINT_DIR": str(broken),
            "PKUSEG_HOME": str(broken / "pkuseg"),
        },
    )
    expected = f"model failed to load: FileNotFoundError: TTS_CHECKPOINT_DIR={broken} lacks s3gen.pt ("
    worker_ids = set()
    for text in ("First.", "Second."):
        job = rp_notebook.tts(text, endpoint=endpoint)
        with pytest.raises(JobFailedError) as failed:
            job.result(timeout=JOB_TIMEOUT_S)
        assert failed.value.error.startswith(expected), failed.value.error
        worker_ids.add(job.worker_id)
    # One worker answered both and is still up: no crash, no restart.
    (worker,) = server.workers(endpoint, include_exited=True)
    assert worker_ids == {worker.id}
    assert worker.returncode is None and worker.jobs_done == 2
