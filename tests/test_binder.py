"""The Binder demo (binder/) works: what it installs, what postBuild does, and what a kernel then can do.

repo2docker cannot run here (it needs Docker), so each of its steps is run as repo2docker would run it:
`requirements.txt` is read the way pip reads it from the repository root and compared with
pyproject.toml; `postBuild` runs under bash with HOME and IPYTHONDIR in a throwaway folder; then a real
kernel (jupyter_client, started with that environment and no RUNPOD_API_KEY) must have `%runpod` without
`%load_ext`, start the local endpoint and speak a sentence on the CPU demo engine. The kernel is started
once for the module: starting it is the slow part, and both kernel tests are about the same fresh kernel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
#: What Binder adds besides the project: the notebook front end, nothing the notebooks import.
FRONT_END = {"jupyterlab"}
#: A local path requirement with extras, as pip reads it in a requirements file (`.[local]`).
LOCAL_PATH = re.compile(r"^(?P<path>\.[^\[\s]*)(\[(?P<extras>[^\]]*)\])?$")


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def declared_names(project: dict) -> set[str]:
    """Every distribution the project declares, in its dependencies or any extra."""
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return {canonicalize_name(Requirement(spec).name) for spec in specs}


def test_requirements_install_this_repository_with_the_local_extra_and_nothing_undeclared():
    lines = requirement_lines(BINDER / "requirements.txt")
    options = [line for line in lines if line.startswith("-")]
    assert not options, (
        f"no pip options (other indexes, -e, -r): a Binder build must match a plain install: {options}"
    )

    local = [match for line in lines if (match := LOCAL_PATH.match(line))]
    assert len(local) == 1, f"exactly one line installs the repository: {lines}"
    # repo2docker runs pip from the repository root, where pip resolves a relative path.
    assert (REPO / local[0]["path"]).resolve() == REPO
    extras = {e.strip() for e in (local[0]["extras"] or "").split(",") if e.strip()}
    project = pyproject()["project"]
    assert extras == {"local"}
    assert "local" in project["optional-dependencies"]

    others = [Requirement(line) for line in lines if not LOCAL_PATH.match(line)]
    undeclared = {canonicalize_name(r.name) for r in others} - declared_names(project) - FRONT_END
    assert not undeclared, (
        f"binder/requirements.txt installs what pyproject.toml does not declare: {undeclared}"
    )
    for requirement in others:
        name = canonicalize_name(requirement.name)
        if name in declared_names(project):
            # A pin here must not differ from the project's: the version the tests run with must fit it.
            installed = version(requirement.name)
            assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)


def test_runtime_is_a_python_the_project_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"repo2docker wants python-X.Y, got {runtime!r}"
    assert Version(match[1]) in SpecifierSet(pyproject()["project"]["requires-python"])


def test_the_demo_engines_native_libraries_come_from_their_wheels_so_binder_needs_no_apt_packages():
    """libsndfile (soundfile) and espeak-ng (piper) would otherwise be apt.txt entries: check they load
    from the Python environment even on this machine, which has a system libsndfile too."""
    probe = (
        "import soundfile, piper.espeakbridge, onnxruntime\n"
        "maps = open('/proc/self/maps').read().split()\n"
        "print('\\n'.join(sorted({p for p in maps if '.so' in p})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    env_root = Path(sys.prefix).resolve()
    for library in ("sndfile", "espeakbridge", "onnxruntime"):
        paths = [Path(p) for p in loaded if library in Path(p).name]
        assert paths, f"{library} was not loaded"
        assert all(env_root in p.resolve().parents for p in paths), f"{library} loaded from outside: {paths}"
    assert not (BINDER / "apt.txt").exists()


# ---------------------------------------------------------------------------------------------- postBuild
def postbuild_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "IPYTHON", "JPY_"))}
    env.update(
        HOME=str(home),
        IPYTHONDIR=str(home / ".ipython"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        RP_NOTEBOOK_DATA_DIR=str(home / "data"),
        RP_NOTEBOOK_CONFIG_DIR=str(home / "config"),
    )
    env.update(extra)
    return env


def run_postbuild(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BINDER / "postBuild")], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_postbuild_is_valid_bash_and_is_executable():
    checked = subprocess.run(["bash", "-n", str(BINDER / "postBuild")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert os.access(BINDER / "postBuild", os.X_OK)


def test_postbuild_fails_the_build_when_the_local_endpoint_cannot_be_imported(tmp_path):
    """repo2docker goes on after a failing step unless the script stops itself: a broken install must
    end the build, not the first notebook cell. A `python` that cannot import anything stands in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named rp_notebook' >&2\nexit 1\n")
    fake.chmod(0o755)
    home = tmp_path / "home"
    done = run_postbuild(postbuild_env(home, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    assert done.returncode != 0
    assert "rp_notebook" in done.stderr
    assert not (home / ".ipython" / "profile_default" / "ipython_kernel_config.py").exists()


@pytest.fixture(scope="module")
def binder_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockingKernelClient]:
    """A fresh kernel in the environment postBuild prepared (run twice: a rebuild must not stack it)."""
    home = tmp_path_factory.mktemp("binder-home")
    env = postbuild_env(home)
    for _ in range(2):
        done = run_postbuild(env)
        assert done.returncode == 0, done.stderr
    workdir = home / "work"  # no .env anywhere above it that could hold a key
    workdir.mkdir()
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(workdir))
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(client: BlockingKernelClient, code: str, timeout: float = 120) -> str:
    """Run `code` in the kernel; its stdout, or a failure with the kernel's error."""
    out: list[str] = []

    def collect(msg: dict) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])

    reply = client.execute_interactive(code, timeout=timeout, output_hook=collect)
    content = reply["content"]
    assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"
    return "".join(out)


def test_postbuild_makes_every_new_kernel_load_the_extension(binder_kernel):
    seen = execute(
        binder_kernel,
        "from ipykernel.kernelapp import IPKernelApp\n"
        "ip = get_ipython()\n"
        "print('rp_notebook' in ip.extension_manager.loaded)\n"
        "print(ip.find_line_magic('runpod') is not None, ip.find_cell_magic('runpod') is not None)\n"
        "print(list(IPKernelApp.instance().extensions))",
    )
    assert seen.splitlines() == ["True", "True True", "['rp_notebook']"]


def test_a_binder_kernel_speaks_on_the_local_endpoint_with_no_api_key(binder_kernel):
    seen = execute(
        binder_kernel,
        "import os\n"
        "print('RUNPOD_API_KEY' in os.environ)\n"
        "%runpod local start\n"
        'job = %runpod tts "Hello from Binder."\n'
        "speech = job.result(timeout=120)\n"
        "print(job.endpoint_id, speech.engine, speech.format, speech.duration > 0.3)\n"
        "%runpod local stop",
        timeout=180,
    )
    lines = seen.splitlines()
    assert lines[0] == "False"
    assert "local-tts piper wav True" in lines
