"""The real model libraries through the unmodified workers, in their images' own environments.

Every test here is marked `real_models` (`pytest -m real_models` runs only these). Each worker
folder is read as its image (`rp_notebook.local._worker_folder`): its Dockerfile's `pip install`
lines build the worker's environment (`rp_notebook.local._environments`), cached by content hash in
the user cache folder, so the first run on a machine downloads and installs the pinned torch,
chatterbox-tts or diffusers once, and later runs reuse them. Model weights are random (no hub is
reachable): each test module writes its checkpoint folder with the library's own modules, cached
beside the environments and keyed by the writer script's hash.

The workers run on a local endpoint over real HTTP, deployed the way a user deploys an image:
a template whose image is `local:<the worker folder>`, with the template env selecting the real
engine and the checkpoint folder.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rp_notebook.local import LocalEndpoint
from rp_notebook.local._environments import WorkerEnvironments, environments_dir
from rp_notebook.local._worker_folder import read_worker_folder

REPO = Path(__file__).resolve().parents[2]
WORKERS_DIR = REPO / "workers"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_models)


def worker_python(worker: str) -> str:
    """The Python of `workers/<worker>`'s image environment, built now if it is not yet."""
    packages = read_worker_folder(WORKERS_DIR / worker).packages
    assert packages is not None, f"{worker}'s Dockerfile installs nothing"
    return WorkerEnvironments().build(packages)


def checkpoints_dir() -> Path:
    """Where the random-weight checkpoints are cached (beside the worker environments)."""
    folder = environments_dir().parent / "test-checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_in(python: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a script with a worker environment's Python; fail the test with its output if it fails."""
    done = subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    """A local endpoint of the test module's own (its workers hold several GB each)."""
    srv = LocalEndpoint(port=0, default_endpoints=False)
    srv.start()
    yield srv
    srv.stop()
