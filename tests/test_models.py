"""The TTS field definitions: every bad value is refused with a message naming the field."""

import pytest

from rp_notebook.errors import InputError
from rp_notebook.models import MODELS, TTS


def test_defaults_are_filled_and_valid_input_passes_through():
    clean = TTS.validate({"text": "Hello", "exaggeration": "0.7", "seed": "42"})
    assert clean == {
        "text": "Hello",
        "exaggeration": 0.7,
        "cfg_weight": 0.5,
        "temperature": 0.8,
        "seed": 42,
        "language": "en",
        "format": "wav",
        "stream": True,
    }


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({}, "text", "required"),
        ({"text": ""}, "text", "empty"),
        ({"text": "   "}, "text", "empty"),
        ({"text": 42}, "text", "got int"),
        ({"text": "x" * 5001}, "text", "5,001 characters"),
        ({"text": "x" * 1_000_000}, "text", "1,000,000 characters"),
        ({"text": "hi", "exaggeration": 2.5}, "exaggeration", "from 0 to 2"),
        ({"text": "hi", "exaggeration": -0.1}, "exaggeration", "out of range"),
        ({"text": "hi", "exaggeration": "loud"}, "exaggeration", "got 'loud'"),
        ({"text": "hi", "exaggeration": True}, "exaggeration", "got True"),
        ({"text": "hi", "exaggeration": float("nan")}, "exaggeration", "nan"),
        ({"text": "hi", "cfg_weight": 1.01}, "cfg_weight", "from 0 to 1"),
        ({"text": "hi", "temperature": 0}, "temperature", "from 0.05 to 5"),
        ({"text": "hi", "temperature": [1]}, "temperature", "got list"),
        ({"text": "hi", "seed": -1}, "seed", "integer from 0 to 4294967295"),
        ({"text": "hi", "seed": 2**32}, "seed", "out of range"),
        ({"text": "hi", "seed": 1.5}, "seed", "integer"),
        ({"text": "hi", "language": "xx"}, "language", "one of 'ar'"),
        ({"text": "hi", "format": "mp3"}, "format", "'wav', 'flac', 'ogg'"),
        ({"text": "hi", "voice": "not base64!"}, "voice", "not valid base64"),
        ({"text": "hi", "voice": ""}, "voice", "empty"),
        ({"text": "hi", "voice": "A" * 8_000_004}, "voice", "MB of base64"),
        ({"text": "hi", "speed": 2}, "speed", "not an input of tts"),
    ],
)
def test_bad_tts_input_names_the_field_and_what_it_allows(values, field, words):
    with pytest.raises(InputError) as caught:
        TTS.validate(values)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert words in str(caught.value)


def test_an_input_that_is_not_an_object_is_refused():
    with pytest.raises(InputError, match=r"^input: expected an object"):
        TTS.validate(["hello"])  # type: ignore[arg-type]


def test_voice_accepts_a_url_or_a_data_url():
    assert TTS.validate({"text": "hi", "voice": "https://example.org/v.wav"})["voice"].startswith("https://")
    assert TTS.validate({"text": "hi", "voice": "data:audio/wav;base64,UklGRg=="})["voice"].startswith(
        "data:"
    )


def test_every_model_field_has_help_and_a_flag():
    for spec in MODELS.values():
        for field in spec.fields:
            assert field.help and field.flag.startswith("--")
            if field.default is not None:
                assert field.coerce(field.default) == field.default
