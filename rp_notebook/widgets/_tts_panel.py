"""TTSPanel: type text, pick a voice, tune the sliders, press Generate, hear the result.

Every control except the voice comes from the TTS spec's fields (`_fields.FieldForm`), so ranges and
defaults match the magic, the client's validation and the worker. The voice is a choice between
the worker's built-in voice, presets given to the panel (name -> file path or URL) and a clip
uploaded here; the clip's bytes are read from the `FileUpload` (ipywidgets 8: `value` is a tuple of
dicts whose `content` is a memoryview) and sent as base64 with the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..models import TTS
from ._common import guarded
from ._fields import FieldForm, media_problem
from ._model_panel import ModelPanel

__all__ = ["TTSPanel"]

BUILT_IN = "built-in"
UPLOADED = "uploaded"
_PRESET = "preset:"


class TTSPanel(ModelPanel):
    """Text to speech with live status and a history of job cards (each one player).

    endpoint: the endpoint id (default: the one configured for "tts" when Generate is pressed).
    voices: preset reference clips, name -> file path or http(s) URL.
    text: the text to start with.
    """

    saved_as = "TTS panel (%runpod panel tts)"

    model = "tts"
    main_fields = ("exaggeration", "cfg_weight", "temperature", "seed", "language", "format")
    indented_messages = ("voice",)

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        voices: Mapping[str, str | Path] | None = None,
        text: str = "",
    ) -> None:
        self.form = FieldForm(TTS, skip=("voice",), multiline=("text",))
        self.text = self.form["text"]
        self.text.value = text
        self.text.placeholder = "Text to speak"
        self.text.layout.width = "100%"
        self.voices: dict[str, str | Path] = dict(voices or {})
        self._uploaded: tuple[str, bytes] | None = None
        self.voice = widgets.Dropdown(
            description="voice", options=self._voice_options(), value=BUILT_IN, tooltip=TTS["voice"].help
        )
        self.voice.add_class("rp-tts-voice")
        self.voice_upload = widgets.FileUpload(accept="audio/*", multiple=False, description="Upload clip")
        self.voice_upload.add_class("rp-tts-voice-upload")
        self.voice_upload.observe(self._on_upload, names="value")
        self.voice.observe(self._on_voice, names="value")
        wrap = widgets.Layout(flex_flow="row wrap")  # the upload button goes below where there is no room
        voice_row = widgets.VBox(
            [widgets.HBox([self.voice, self.voice_upload], layout=wrap), self.form.message("voice")]
        )
        self._check_voice()
        super().__init__(endpoint=endpoint, special=(self.form.rows["text"], voice_row))

    # -- voice ------------------------------------------------------------------------------------------

    def _voice_options(self) -> list[tuple[str, str]]:
        options = [("built-in voice", BUILT_IN)]
        options += [(name, _PRESET + name) for name in self.voices]
        if self._uploaded is not None:
            options.append((f"uploaded: {self._uploaded[0]}", UPLOADED))
        return options

    @guarded
    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if files:
            self._uploaded = (str(files[0]["name"]), bytes(files[0]["content"]))
        else:
            self._uploaded = None
        selected = self.voice.value
        self.voice.options = self._voice_options()
        if self._uploaded is not None:
            self.voice.value = UPLOADED
        elif selected != UPLOADED:
            self.voice.value = selected
        self._check_voice()

    @guarded
    def _on_voice(self, _change: dict[str, Any]) -> None:
        self._check_voice()

    def _check_voice(self) -> None:
        """Check the chosen voice as the client will before a submit (an upload's first bytes, a
        preset's file), and show what is wrong under the voice row."""
        voice, _name = self._voice_input()
        self.form.set_problem("voice", media_problem(TTS, "voice", voice))

    def _voice_input(self) -> tuple[Any, str]:
        """(the voice input: None, a path, a URL or bytes; the name shown in the history)."""
        choice = self.voice.value
        if choice == UPLOADED and self._uploaded is not None:
            return self._uploaded[1], self._uploaded[0]
        if isinstance(choice, str) and choice.startswith(_PRESET):
            name = choice[len(_PRESET) :]
            return self.voices[name], name
        return None, "built-in"

    # -- the ModelPanel hooks ---------------------------------------------------------------------------

    def _inputs(self) -> tuple[dict[str, Any], str]:
        values = self.form.values()
        voice, voice_name = self._voice_input()
        if voice is not None:
            values["voice"] = voice
        return values, f"voice: {voice_name}"
