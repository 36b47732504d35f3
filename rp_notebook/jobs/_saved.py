"""Saved results: a finished job's result kept as it arrives, and read back later.

A worker's plain JSON output of up to `INLINE_OUTPUT_MAX` characters is kept in the job's ledger
row (`inline_output`): no files, and written in the same transaction as the job's end. Anything
else (speech, layers, a larger output) gets a folder of its own:

A folder holds `result.json` (what kind of result, and its metadata) next to the media files, so
the files are useful on their own (`speech.wav`, `layer_01.png`, ...) and the typed result can be
rebuilt after a kernel restart without asking Runpod, which forgets a result 30 minutes after the
job ends. The folder is written under a temporary name and renamed into place: a kernel killed
mid-write leaves no half result that looks whole, and when two kernels follow the same job, the
first complete copy stays (a retried job's old folder is removed when the retry is sent).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..results import AudioResult, LayersResult

__all__ = [
    "INLINE_OUTPUT_MAX",
    "MANIFEST",
    "inline_output",
    "load_result",
    "load_saved",
    "remove_result",
    "save_result",
]

MANIFEST = "result.json"
#: Plain JSON outputs up to this many characters are kept in the ledger row instead of a folder.
INLINE_OUTPUT_MAX = 1_000_000


def inline_output(result: Any) -> str | None:
    """The result as JSON text to keep in the ledger, or None when it belongs in a folder (media, or
    over INLINE_OUTPUT_MAX)."""
    if isinstance(result, AudioResult | LayersResult):
        return None
    text = json.dumps(result, default=repr)
    return text if len(text) <= INLINE_OUTPUT_MAX else None


def load_saved(result_path: str | None, output: str | None) -> Any:
    """A result kept by the recorder: from the ledger's `output` text, else from its folder."""
    if output is not None:
        return json.loads(output)
    if result_path is None:
        raise ValueError("no result was kept")
    return load_result(result_path)


def save_result(result: Any, folder: Path) -> Path:
    """Write `result` (AudioResult, LayersResult, or a worker's raw JSON output) into `folder`."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        manifest = _write(result, staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            staging.rename(folder)  # atomic; refused when the folder exists (holds a whole copy)
        except OSError:
            if not (folder / MANIFEST).exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def remove_result(folder: Path) -> None:
    """Drop a saved result (its job is being retried: the next result replaces it)."""
    shutil.rmtree(folder, ignore_errors=True)


def _write(result: Any, folder: Path) -> dict[str, Any]:
    if isinstance(result, AudioResult):
        name = f"speech.{result.format}"
        (folder / name).write_bytes(result.data)
        return {
            "kind": "audio",
            "file": name,
            "format": result.format,
            "sample_rate": result.sample_rate,
            "duration": result.duration,
            "job_id": result.job_id,
            "engine": result.engine,
            "warnings": list(result.warnings),
        }
    if isinstance(result, LayersResult):
        return {
            "kind": "layers",
            "files": [path.name for path in result.save(folder)],
            "width": result.width,
            "height": result.height,
            "job_id": result.job_id,
            "engine": result.engine,
            "seed": result.seed,
            "storage": result.storage,
            "warnings": list(result.warnings),
            "timing": result.timing,
        }
    (folder / "output.json").write_text(json.dumps(result, indent=1, default=repr))
    return {"kind": "raw", "file": "output.json"}


def load_result(folder: str | Path) -> Any:
    """The result saved in `folder`, as the same type `job.result()` gave when it arrived."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    kind = manifest.get("kind")
    if kind == "audio":
        return AudioResult(
            data=(folder / manifest["file"]).read_bytes(),
            format=manifest["format"],
            sample_rate=int(manifest["sample_rate"]),
            duration=float(manifest["duration"]),
            job_id=manifest.get("job_id", ""),
            engine=manifest.get("engine"),
            warnings=tuple(manifest.get("warnings") or ()),
        )
    if kind == "layers":
        return LayersResult(
            pngs=tuple((folder / name).read_bytes() for name in manifest["files"]),
            width=int(manifest["width"]),
            height=int(manifest["height"]),
            job_id=manifest.get("job_id", ""),
            engine=manifest.get("engine"),
            seed=manifest.get("seed"),
            storage=manifest.get("storage", "inline"),
            warnings=tuple(manifest.get("warnings") or ()),
            timing=dict(manifest.get("timing") or {}),
        )
    return json.loads((folder / manifest["file"]).read_text())
