"""Inputs of the text-to-speech worker (workers/chatterbox_tts).

Ranges follow Chatterbox's own demo app and README (shared/docs/workers-models.md §1.3):
exaggeration 0.25-2 there, 0-2 here (0 is a flat read); cfg_weight 0-1; temperature 0.05-5.
"""

from __future__ import annotations

from ..errors import InputError
from ._fields import Field, ModelSpec
from ._media import audio_format

#: Languages of ChatterboxMultilingualTTS (chatterbox.SUPPORTED_LANGUAGES, 0.1.7).
LANGUAGES = (
    "ar",
    "da",
    "de",
    "el",
    "en",
    "es",
    "fi",
    "fr",
    "he",
    "hi",
    "it",
    "ja",
    "ko",
    "ms",
    "nl",
    "no",
    "pl",
    "pt",
    "ru",
    "sv",
    "sw",
    "tr",
    "zh",
)
AUDIO_FORMATS = ("wav", "flac", "ogg")
#: 5,000 characters is about five minutes of speech: a WAV of that stays under the job API's
#: 10 MB payload limit only as flac/ogg, so longer text belongs in a batch of jobs.
MAX_TEXT_CHARS = 5_000
#: A reference clip longer than ~10 s is not used by the model anyway (it reads the first 6-10 s).
MAX_VOICE_BASE64 = 8_000_000


def check_voice_header(raw: bytes) -> None:
    """The `voice` field's check: the clip's first bytes must announce an audio container the
    worker's decoder (libsndfile) reads. A picture or a text file sent by mistake is refused here,
    before a job starts a GPU worker only to fail decoding it."""
    if audio_format(raw) is None:
        raise InputError(
            "voice", "is not an audio file (its first bytes are not WAV, FLAC, OGG or MP3); send one of those"
        )


TTS = ModelSpec(
    name="tts",
    title="Chatterbox text to speech",
    positional="text",
    fields=(
        Field(
            "text",
            str,
            "The text to speak. Long text is split on sentence boundaries.",
            required=True,
            max_length=MAX_TEXT_CHARS,
        ),
        Field(
            "exaggeration",
            float,
            "Emotion intensity: 0.5 is neutral, 0.7+ is dramatic.",
            default=0.5,
            minimum=0.0,
            maximum=2.0,
            step=0.05,
        ),
        Field(
            "cfg_weight",
            float,
            "Pacing and adherence to the reference voice; lower is slower, calmer.",
            default=0.5,
            minimum=0.0,
            maximum=1.0,
            step=0.05,
        ),
        Field(
            "temperature", float, "Sampling randomness.", default=0.8, minimum=0.05, maximum=5.0, step=0.05
        ),
        Field(
            "seed", int, "Random seed; 0 picks a new one each time.", default=0, minimum=0, maximum=2**32 - 1
        ),
        Field(
            "language", str, "Language of the text (the multilingual model).", default="en", choices=LANGUAGES
        ),
        Field(
            "voice",
            str,
            "Reference clip to clone: base64 audio, a data: URL or an http(s) URL "
            "(in a magic, also a file path).",
            media=True,
            max_length=MAX_VOICE_BASE64,
            check=check_voice_header,
        ),
        Field("format", str, "Audio file format of the result.", default="wav", choices=AUDIO_FORMATS),
        Field(
            "stream",
            bool,
            "Send each part as soon as it is spoken, so playback starts before the whole text is done "
            "(the output then lists the parts, then the whole file).",
            default=True,
        ),
    ),
)
