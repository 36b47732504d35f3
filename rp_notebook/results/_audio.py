"""AudioResult: speech from the TTS worker."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from ._errors import MalformedOutputError, describe
from ._html import BOX

#: Audio format -> MIME type, for players and data: URLs.
AUDIO_MIME = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}

__all__ = ["AudioResult"]


@dataclass(frozen=True, repr=False)
class AudioResult:
    """Speech from the TTS worker: an encoded audio file and what describes it."""

    data: bytes
    format: str
    sample_rate: int
    duration: float
    job_id: str = ""
    engine: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_output(cls, output: Any, job_id: str = "") -> AudioResult:
        if isinstance(output, list):
            # A streaming worker's aggregate: the parts, then the whole file marked "final".
            finals = [item for item in output if isinstance(item, dict) and item.get("final")]
            output = finals[-1] if finals else (output[-1] if output else None)
        if not isinstance(output, dict) or not isinstance(output.get("audio"), str):
            raise MalformedOutputError(
                f"job {job_id}: expected an output with base64 'audio', got {describe(output)}"
            )
        try:
            data = base64.b64decode(output["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise MalformedOutputError(f"job {job_id}: 'audio' is not valid base64") from None
        return cls(
            data=data,
            format=str(output.get("format", "wav")),
            sample_rate=int(output.get("sample_rate", 0)),
            duration=float(output.get("duration", 0.0)),
            job_id=job_id,
            engine=output.get("engine"),
            warnings=tuple(output.get("warnings") or ()),
        )

    @property
    def mime_type(self) -> str:
        return AUDIO_MIME.get(self.format, f"audio/{self.format}")

    def save(self, path: str | Path) -> Path:
        """Write the audio file; a folder gets `<job id>.<format>` inside it."""
        target = Path(path)
        if target.is_dir():
            target = target / f"{self.job_id or 'speech'}.{self.format}"
        target.write_bytes(self.data)
        return target

    def __repr__(self) -> str:
        return (
            f"AudioResult({self.format}, {self.duration:.2f} s at {self.sample_rate} Hz, "
            f"{len(self.data):,} bytes)"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": audio_html(self)}


#: Clips up to this size are embedded in the notebook (a data: URL plays with no kernel and no
#: server); larger ones are named with the file they were saved to. 8 MB is about 3 minutes of
#: 24 kHz WAV, and keeps a notebook of a few clips easy to open and share.
MAX_EMBEDDED_AUDIO_BYTES = 8 * 1024 * 1024


def audio_html(audio: AudioResult, *, saved_to: Path | None = None) -> str:
    """A playable <audio> with the clip embedded (a saved notebook plays it with no kernel), or, past
    MAX_EMBEDDED_AUDIO_BYTES, where the file is."""
    notes = "".join(f"<div style='color:#b45309'>⚠ {escape(w)}</div>" for w in audio.warnings)
    caption = f"{audio.duration:.1f} s · {audio.format} · {audio.sample_rate} Hz"
    if audio.engine:
        caption += f" · {escape(audio.engine)} engine"
    if len(audio.data) <= MAX_EMBEDDED_AUDIO_BYTES:
        src = f"data:{audio.mime_type};base64,{base64.b64encode(audio.data).decode()}"
        player = f"<audio controls preload='metadata' src='{src}'></audio>"
    else:
        where = f"saved to <code>{escape(str(saved_to))}</code>" if saved_to else "not saved to disk"
        player = (
            f"<div class='rp-notebook-audio-too-large'>{len(audio.data) / 1e6:.1f} MB of audio, too large "
            f"to embed in the notebook (the limit is {MAX_EMBEDDED_AUDIO_BYTES // (1024 * 1024)} MB): "
            f"{where}</div>"
        )
    return (
        f"<div class='rp-notebook-audio' style='{BOX}'>{player}"
        f"<div style='color:#6b7280'>{caption}</div>{notes}</div>"
    )
