#!/usr/bin/env bash
# The GPU check, one command: on a machine with an NVIDIA GPU, run both workers' engines on CUDA with
# full-size models of the real architectures (real weights when HF_HOME holds them) and print load
# time, seconds per job at the presets' defaults, peak VRAM and which preset pools fit
# (scripts/gpu_check.py says how). Run from a clone after `make install` (it uses .venv):
#
#   scripts/gpu_check.sh [OUT_DIR]        # OUT_DIR (default gpu-check/) keeps the JSON results
#
# The first run builds the two worker images' environments with pip (several GB each, cached in
# ~/.cache/rp_notebook/worker-envs), exactly as the local endpoint does for a `local:` image.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
py=.venv/bin/python
env_python() {  # the Python of workers/$1's image environment, built if needed
    "$py" -c "import sys; from pathlib import Path
from rp_notebook.local._environments import WorkerEnvironments
from rp_notebook.local._worker_folder import read_worker_folder
print(WorkerEnvironments().build(read_worker_folder(Path('workers') / sys.argv[1]).packages))" "$1"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" "$(env_python chatterbox_tts)" scripts/gpu_check.py tts --out "$out/tts.json" "${@:2}"
HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" "$(env_python qwen_image_layered)" scripts/gpu_check.py layers --out "$out/layers.json" "${@:2}"
"$py" scripts/gpu_check.py report "$out/tts.json" "$out/layers.json"
