"""%runpod and %%runpod in a real IPython shell, against the local endpoint over HTTP."""

from __future__ import annotations

import io
import wave

import pytest
from IPython.core.error import UsageError

from rp_notebook import AudioResult, Job
from rp_notebook.config import configure
from rp_notebook.errors import ConfigurationError, InputError

KEY = "fake_SECRETSECRETSECRET_0123456789"


def test_setup_status_says_whether_a_key_is_set_but_never_shows_it(ip):
    configure(api_key=KEY, endpoints={"tts": "ep-123"})
    shown = ip.run_line_magic("runpod", "")
    bundle = shown._repr_mimebundle_()
    assert "set" in bundle["text/plain"] and "ep-123" in bundle["text/plain"]
    assert KEY not in repr(shown) and all(KEY not in text for text in bundle.values())


def test_help_lists_every_tts_option_with_its_range(ip):
    doc = ip.find_line_magic("runpod").__doc__
    for flag, allowed in [
        ("--exaggeration", "from 0 to 2"),
        ("--cfg-weight", "from 0 to 1"),
        ("--temperature", "from 0.05 to 5"),
        ("--format", "'wav', 'flac', 'ogg'"),
        ("--voice", "URL"),
        ("--language", "'en'"),
        ("--seed", "integer"),
    ]:
        assert flag in doc and allowed in doc


@pytest.mark.timeout(120)
def test_tts_magic_returns_a_job_at_once_that_resolves_to_decodable_audio(ip, use_local):
    job = ip.run_line_magic("runpod", 'tts "Hello from a magic." --temperature 0.7')
    assert isinstance(job, Job) and job.model == "tts" and job.endpoint_id == "local-tts"
    audio = job.result(timeout=90)
    assert isinstance(audio, AudioResult) and audio.format == "wav"
    with wave.open(io.BytesIO(audio.data)) as wav:
        assert wav.getframerate() == audio.sample_rate
        assert wav.getnframes() / wav.getframerate() == pytest.approx(audio.duration, abs=0.05)
    assert job.status == "COMPLETED" and job.worker_id and job.execution_time is not None


@pytest.mark.timeout(120)
def test_cell_magic_speaks_the_cell_body_with_line_options(ip, use_local):
    job = ip.run_cell_magic("runpod", "tts --format flac", "First line.\nSecond line.\n")
    audio = job.result(timeout=90)
    assert audio.format == "flac" and audio.data[:4] == b"fLaC"


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        (
            'tts "hi" --exaggeration 9',
            InputError,
            "exaggeration: 9 is out of range; expected a number from 0 to 2",
        ),
        ('tts "hi" --format mp3', InputError, "format: expected one of 'wav', 'flac', 'ogg', got 'mp3'"),
        ('tts "hi" --seed x', InputError, "seed: expected an integer"),
        ("tts", InputError, "text: is required"),
        ('tts "hi" --voice missing.wav', InputError, "voice: no such file"),
        ('tts "hi" --loud', UsageError, "unrecognized arguments: --loud"),
        ("speak hi", UsageError, "unknown %runpod command 'speak'"),
    ],
)
def test_bad_magic_input_is_refused_before_any_request(ip, line, error, words):
    # Nothing listens on port 9: had a request been sent, this would be a TransportError instead.
    configure(api_key=KEY, endpoint_base_url="http://127.0.0.1:9/v2", endpoints={"tts": "ep"})
    with pytest.raises(error) as caught:
        ip.run_line_magic("runpod", line)
    assert words in str(caught.value)


def test_a_missing_endpoint_says_how_to_configure_one(ip):
    configure(api_key=KEY)
    with pytest.raises(ConfigurationError, match="RP_NOTEBOOK_TTS_ENDPOINT"):
        ip.run_line_magic("runpod", 'tts "hi"')


def test_text_in_both_the_line_and_the_cell_body_is_refused(ip):
    with pytest.raises(UsageError, match="either on the %%runpod line or in the cell body"):
        ip.run_cell_magic("runpod", 'tts "line text"', "body text")


def test_help_lists_the_layers_options_with_their_short_aliases(ip):
    doc = " ".join(ip.find_line_magic("runpod").__doc__.split())  # argparse wraps lines
    assert "%runpod layers" in doc
    for flag in (
        "--layers",
        "--resolution",
        "--prompt",
        "--steps",
        "--num-inference-steps",
        "--cfg",
        "--seed",
    ):
        assert flag in doc
    assert "one of 640, 1024 (default 640)" in doc and "text of 0 to 2,000 characters (default ' ')" in doc


def test_a_megabyte_magic_line_is_refused_before_parsing_and_points_to_the_cell_body(ip, use_local):
    from IPython.core.error import UsageError

    magics = ip.magics_manager.registry["RunpodMagics"]
    # Called directly: run_line_magic first expands $variables, which IPython does in quadratic time.
    with pytest.raises(UsageError, match=r"1,000,004 characters .* cell body: %%runpod tts"):
        magics.runpod("tts " + "a" * 1_000_000)
