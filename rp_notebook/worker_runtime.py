"""What the GPU worker images share beyond their input fields: where the model runs.

Both workers fall back to the CPU when torch sees no GPU, which is what a laptop or the local
endpoint wants. On Runpod it would be a silent disaster: a host whose driver is older than the
image's CUDA build gives torch no GPU, and a 58 GB model would load on the CPU and bill until the
execution timeout. So on Runpod a missing GPU is an error (`GPUUnavailableError`) that names
torch's CUDA build, the driver's version and the CUDA versions the endpoint allows; the worker
answers every job with it at once (see each worker's handler) instead of computing.

"On Runpod" is read from the worker's environment: Runpod sets RUNPOD_ENDPOINT_ID in every
serverless worker; rp_notebook's local endpoint sets it too, and also RP_NOTEBOOK_LOCAL_ENDPOINT.
The endpoint's allowed CUDA versions are not visible inside a worker, so the deploy presets put
them into the template's env as RP_NOTEBOOK_ALLOWED_CUDA.

Standard library only (torch is passed in), so the workers' tests and the client can import it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ALLOWED_CUDA_ENV",
    "LOCAL_ENDPOINT_ENV",
    "GPUUnavailableError",
    "choose_device",
    "driver_version",
    "on_runpod",
]

LOCAL_ENDPOINT_ENV = "RP_NOTEBOOK_LOCAL_ENDPOINT"
ALLOWED_CUDA_ENV = "RP_NOTEBOOK_ALLOWED_CUDA"
_PROC_VERSION = Path("/proc/driver/nvidia/version")


class GPUUnavailableError(RuntimeError):
    """A GPU worker on Runpod sees no GPU; the message says why it may be and what to change."""


def on_runpod(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a Runpod serverless worker (not one of the local endpoint's)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("RUNPOD_ENDPOINT_ID")) and not environ.get(LOCAL_ENDPOINT_ENV)


def driver_version(proc_version: Path = _PROC_VERSION) -> str | None:
    """The NVIDIA driver's version, from the kernel module or nvidia-smi; None when there is none."""
    try:
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", proc_version.read_text())
        if match:
            return match.group(1)
    except OSError:
        pass
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = answer.stdout.strip().splitlines()[:1]
    return first[0].strip() if answer.returncode == 0 and first else None


def choose_device(torch: Any, *, model: str, environ: Mapping[str, str] | None = None) -> str:
    """ "cuda" when torch sees a GPU; "cpu" off Runpod; GPUUnavailableError on Runpod.

    `torch` is the imported module (the caller has it already; importing it here would make this
    module heavy for everyone else).
    """
    if torch.cuda.is_available():
        return "cuda"
    environ = os.environ if environ is None else environ
    if not on_runpod(environ):
        return "cpu"
    built_for = torch.version.cuda
    driver = driver_version()
    allowed = environ.get(ALLOWED_CUDA_ENV, "").strip()
    raise GPUUnavailableError(
        f"{model} needs a GPU and torch sees none on this Runpod worker: torch {torch.__version__} is "
        + (
            f"a CUDA {built_for} build"
            if built_for
            else "a CPU-only build (the image installed the wrong wheel)"
        )
        + f"; the host's NVIDIA driver is {driver or 'not visible (no GPU attached?)'}; the endpoint allows CUDA "
        + (allowed or "versions this worker cannot see (set allowedCudaVersions on the endpoint)")
        + ". "
        + (
            f"Restrict the endpoint's allowed CUDA versions to {built_for} or newer so it only gets hosts "
            "whose driver can run this build."
            if built_for
            else "Rebuild the image with a CUDA build of torch."
        )
    )
